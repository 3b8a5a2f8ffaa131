//! AWS adapters of prmsync: the engine's state in DynamoDB, work queued in SQS, secrets
//! from Secrets Manager, the mapping file from S3, and the configuration read from a
//! Lambda's environment; and the deployment as the operator's machine reaches it
//! ([`deployment`]: its functions invoked, records queued).

pub mod deployment;
pub mod dynamo;
pub mod mapping_source;
pub mod secrets;
pub mod sqs;
