//! tidings processor: the processor Lambda: store each event once, message state, suppressions (issue 3).
//!
//! Not built yet: this crate holds its place in the workspace layout (see ARCHITECTURE in the README).
