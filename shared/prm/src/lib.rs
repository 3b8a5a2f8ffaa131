//! prmsync prm
