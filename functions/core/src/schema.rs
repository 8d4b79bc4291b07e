//! The JSON Schema of the canonical event, generated from the Rust types so the two cannot
//! drift. The checked-in copy (`functions/core/schema/canonical-event.schema.json`) is compared
//! with this by a test; `tidings schema` prints it.

use crate::event::CanonicalEvent;

/// The schema as pretty-printed JSON with a trailing newline.
pub fn canonical_event_schema() -> String {
    let mut schema = schemars::schema_for!(CanonicalEvent);
    schema.insert("$id".into(), "https://tidings.dev/schema/canonical-event.schema.json".into());
    schema.insert(
        "description".into(),
        "A tidings canonical delivery event: one CloudEvents 1.0 structured-mode JSON object.".into(),
    );
    // A schemars schema is a JSON value already; written back through `Value`'s Display, which
    // cannot fail, pretty-printed by re-indenting.
    let value = crate::serde_util::sorted_keys(schema.to_value());
    let mut text = format!("{value:#}");
    text.push('\n');
    text
}
