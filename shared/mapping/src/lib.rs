//! prmsync mapping
