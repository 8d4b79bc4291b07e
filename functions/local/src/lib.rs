//! tidings local: embedded adapters for tidings dev: SQLite store and SQLite queues with SQS semantics (issue 3).
//!
//! Not built yet: this crate holds its place in the workspace layout (see ARCHITECTURE in the README).
