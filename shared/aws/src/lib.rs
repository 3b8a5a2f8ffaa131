//! AWS adapters of prmsync: the engine's state in DynamoDB, work queued in SQS, secrets
//! from Secrets Manager, and the configuration read from a Lambda's environment.

pub mod dynamo;
pub mod secrets;
pub mod sqs;
