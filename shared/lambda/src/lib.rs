//! The Lambda handlers of prmsync.
