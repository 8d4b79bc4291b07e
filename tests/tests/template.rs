//! `template.yaml` and the code agree: every function's binary exists, and every setting the
//! code reads from the environment is set for the functions. (cfn-lint, run by the test
//! command, checks the template itself.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> String {
    std::fs::read_to_string(repo().join("template.yaml")).unwrap()
}

/// Every binary target in the workspace: `[[bin]]` names and `src/bin/*.rs` files.
fn binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let mut in_bin = false;
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_owned());
            }
        }
        if let Ok(files) = std::fs::read_dir(dir.join("src/bin")) {
            for file in files {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    names.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    names
}

/// `TIDINGS_*` names the sources of the Lambda functions read (the CLI and the local adapters
/// are not deployed).
fn settings_read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![repo().join("functions")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let skipped = ["tests", "examples", "cli", "local"];
                if !skipped.iter().any(|s| path.ends_with(s)) {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("TIDINGS_") && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                        names.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_function_in_the_template_is_a_binary_of_the_workspace() {
    let binaries = binaries();
    let declared: Vec<String> =
        template().lines().filter_map(|l| l.trim().strip_prefix("Binary: ").map(str::to_owned)).collect();
    assert!(declared.len() >= 17, "12 ingest functions, SES intake, processor, redrive, fan-out, API: {declared:?}");
    for binary in &declared {
        assert!(binaries.contains(binary), "template.yaml builds {binary:?}, which no crate defines ({binaries:?})");
    }
    for provider in tidings_core::ProviderId::ALL {
        assert!(declared.iter().any(|b| b == provider.as_str()), "no ingest function for {provider}");
        assert!(template().contains(&format!("Path: /webhooks/{provider}/{{source}}")), "no route for {provider}");
    }
}

#[test]
fn every_setting_the_code_reads_is_set_by_the_template() {
    let template = template();
    // Optional on AWS: which private networks fan-out may reach (none unless you opt in).
    let optional = ["TIDINGS_ALLOW_NETWORKS"];
    let missing: Vec<String> = settings_read_by_the_code()
        .into_iter()
        .filter(|name| !optional.contains(&name.as_str()))
        .filter(|name| !template.contains(&format!("{name}:")))
        .collect();
    assert!(missing.is_empty(), "read by the code, never set in template.yaml: {missing:?}");
}

#[test]
fn every_dead_letter_queue_has_an_alarm() {
    let template = template();
    let dead_letter_queues: Vec<&str> = template
        .lines()
        .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.strip_suffix(':')))
        .filter(|name| !name.starts_with(' ') && name.ends_with("DeadLetterQueue"))
        .collect();
    assert!(dead_letter_queues.len() >= 4, "events, deliveries, redrive, SES intake: {dead_letter_queues:?}");
    for queue in dead_letter_queues {
        let watched = format!("{{Name: QueueName, Value: !GetAtt {queue}.QueueName}}");
        assert!(template.contains(&watched), "no alarm on {queue}");
    }
}
