//! prmsync engine
