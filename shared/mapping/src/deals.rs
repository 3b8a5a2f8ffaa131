//! Deal Registration import rules (filled in by the deals work).
