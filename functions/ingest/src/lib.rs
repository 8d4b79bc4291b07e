//! tidings ingest: per-provider ingest Lambdas: verify, normalize, enqueue (issue 3).
//!
//! Not built yet: this crate holds its place in the workspace layout (see ARCHITECTURE in the README).
