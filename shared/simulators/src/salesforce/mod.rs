//! Salesforce simulator.
