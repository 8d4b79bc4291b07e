//! The README's local command blocks (fenced as `sh local`), run as written, in order, against a
//! dev server, so the README cannot drift from the program. `cargo run -p tidings-cli --` and
//! `tidings` both mean the binary under test; `<subscription id>` is the id the last
//! `subscriptions add` printed. Each command must succeed.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, dev_command, free_port, repo, spawn_dev, temp_dir};
use serde_json::Value;

/// The commands of every `sh local` block, continuation lines joined.
fn local_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let fence = line.trim_start();
        if fence.starts_with("```") {
            in_block = !in_block && fence.trim_start_matches('`').trim() == "sh local";
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

#[test]
fn the_readmes_local_commands_run_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands = local_commands(&readme);
    assert!(commands.len() >= 15, "found {} local commands in README.md", commands.len());

    // A directory of the README's own: `events/` as in a clone, the default `.tidings/dev.db`.
    let dir = temp_dir("readme");
    std::os::unix::fs::symlink(repo().join("events"), dir.join("events")).unwrap();
    let port = free_port();
    let mut dev = dev_command(Path::new(".tidings/dev.db"), port);
    dev.current_dir(&dir).env("XDG_STATE_HOME", dir.join("state")).stderr(std::process::Stdio::null());
    let _dev = spawn_dev(dev, port);

    let prelude = r#"
tidings() { "$TIDINGS_BIN" "$@"; }
cargo() {
  if [ "$1 $2 $3 $4" = "run -p tidings-cli --" ]; then shift 4; "$TIDINGS_BIN" "$@"
  else echo "not a local tidings command: cargo $*" >&2; return 2; fi
}
"#;
    let mut subscription = None::<String>;
    for command in &commands {
        let command = match (&subscription, command.contains("<subscription id>")) {
            (Some(id), true) => command.replace("<subscription id>", id),
            (None, true) => panic!("{command}: no subscription was added before it"),
            (_, false) => command.clone(),
        };
        let out = Command::new("bash")
            .args(["-c", &format!("{prelude}\nset -euo pipefail\n{command}")])
            .current_dir(&dir)
            .env("TIDINGS_BIN", bin())
            .env("XDG_STATE_HOME", dir.join("state"))
            .env_remove("TIDINGS_API")
            .env_remove("TIDINGS_API_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "README command failed: {command}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if command.contains("subscriptions add")
            && let Ok(created) = serde_json::from_str::<Value>(&stdout)
        {
            subscription = created["id"].as_str().map(str::to_owned);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
