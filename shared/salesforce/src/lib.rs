//! prmsync salesforce
