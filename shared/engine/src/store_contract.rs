//! Contract tests every Store implementation passes.
