//! tidings fanout: the fan-out Lambda: signed deliveries to subscribers (issue 4).
//!
//! Not built yet: this crate holds its place in the workspace layout (see ARCHITECTURE in the README).
