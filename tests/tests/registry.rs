//! Everything that lists providers follows the registry (`ProviderId::ALL` and each provider's
//! module): where a list cannot be derived at run time (a file per provider, a table in the
//! README), this checks it names every provider, so adding one is caught until it is complete.

use std::path::{Path, PathBuf};

use tidings_core::ProviderId;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_provider_has_samples_with_its_example_among_them() {
    for provider in ProviderId::ALL {
        let example = repo().join("events").join(provider.as_str()).join(provider.provider().example());
        assert!(example.is_file(), "{provider}: its example {} is missing", example.display());
    }
}

#[test]
fn every_provider_has_a_fuzz_target() {
    let manifest = read("fuzz/Cargo.toml");
    for provider in ProviderId::ALL {
        let target = format!("fuzz/fuzz_targets/{provider}.rs");
        let code = read(&target);
        let variant = format!("{provider:?}");
        assert!(code.contains(&format!("ProviderId::{variant}, data")), "{target} must exercise {variant}");
        assert!(
            manifest.contains(&format!("name = \"{provider}\"\npath = \"fuzz_targets/{provider}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {provider}"
        );
    }
}

#[test]
fn the_readme_describes_every_provider() {
    let readme = read("README.md");
    for provider in ProviderId::ALL {
        assert!(
            readme.contains(&format!("\n| `{provider}` |")),
            "README.md's provider table has no row for {provider}"
        );
    }
}

#[test]
fn the_readmes_set_up_table_is_what_each_provider_module_says() {
    let readme = read("README.md");
    for provider in ProviderId::ALL {
        let setup = provider.provider().setup();
        let cells = [provider.display_name(), setup.add_source, setup.paste_url, setup.test_event];
        let cells: Vec<String> =
            cells.iter().map(|c| if c.is_empty() { " ".to_owned() } else { format!(" {c} ") }).collect();
        let row = format!("\n   |{}|\n", cells.join("|"));
        assert!(readme.contains(&row), "README.md's set-up table has no row{row}for {provider}");
    }
}
