//! The checked-in JSON Schema is the one generated from the Rust types.

use serde_json::Value;

#[test]
fn checked_in_schema_matches_the_rust_types() {
    let path = format!("{}/schema/canonical-event.schema.json", env!("CARGO_MANIFEST_DIR"));
    let generated = tidings_core::schema::canonical_event_schema();
    if std::env::var_os("TIDINGS_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert_eq!(checked_in, generated, "schema is stale: run `cargo run -p tidings-cli -- schema > {path}`");
}

#[test]
fn schema_requires_the_fields_consumers_rely_on() {
    let schema: Value = serde_json::from_str(&tidings_core::schema::canonical_event_schema()).unwrap();
    let required = |v: &Value| -> Vec<String> {
        v["required"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
    };
    let top = required(&schema);
    for field in ["specversion", "id", "source", "type", "time", "datacontenttype", "workspaceid", "data"] {
        assert!(top.contains(&field.to_owned()), "{field} not required");
    }
    let data = required(&schema["$defs"]["EventData"]);
    for field in
        ["channel", "provider", "provider_event_type", "provider_event_id", "message_id", "recipient", "received_at"]
    {
        assert!(data.contains(&field.to_owned()), "data.{field} not required");
    }
}
