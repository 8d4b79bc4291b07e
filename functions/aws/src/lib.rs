//! tidings aws: adapters for the core ports on AWS: SQS, DynamoDB, SESv2 (issue 3).
//!
//! Not built yet: this crate holds its place in the workspace layout (see ARCHITECTURE in the README).
