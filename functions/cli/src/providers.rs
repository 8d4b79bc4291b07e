//! `tidings providers`: what tidings reads, and how.

use tidings_core::ProviderId;

use crate::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object per provider instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    for id in ProviderId::ALL {
        let provider = id.provider();
        let auth = provider.authentication().describe();
        if args.json {
            let types: Vec<_> = provider
                .event_types()
                .iter()
                .map(|(from, to)| serde_json::json!({"provider_event": from, "canonical": to}))
                .collect();
            let setup = provider.setup();
            let setup = serde_json::json!({"add_source": setup.add_source, "paste_url": setup.paste_url, "test_event": setup.test_event});
            let line = serde_json::json!({"provider": id.as_str(), "name": id.display_name(), "authentication": auth, "setup": setup, "event_types": types});
            crate::out::outln!("{line}")?;
        } else {
            crate::out::outln!("{id} ({})\n  authentication: {auth}", id.display_name())?;
            for (from, to) in provider.event_types() {
                crate::out::outln!("  {from:<58} -> {to}")?;
            }
            crate::out::outln!("")?;
        }
    }
    Ok(())
}
