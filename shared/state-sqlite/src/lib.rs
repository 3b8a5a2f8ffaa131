//! prmsync state-sqlite
