//! `tidings`: the command line for the tidings pipeline.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod normalize;
mod providers;

#[derive(Parser)]
#[command(name = "tidings", version, about = "Messaging delivery events, verified, normalized and delivered")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify and normalize one provider webhook body; print canonical events as NDJSON.
    Normalize(Box<normalize::Args>),
    /// List the providers, how each authenticates, and the event types each maps.
    Providers(providers::Args),
    /// Print the JSON Schema of the canonical event.
    Schema,
}

/// How a command failed: bad input (exit 1) or bad usage (exit 2).
pub enum Failure {
    Input(String),
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Normalize(args) => normalize::run(*args),
        Command::Providers(args) => providers::run(args),
        Command::Schema => {
            print!("{}", tidings_core::schema::canonical_event_schema());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(line)) => {
            eprintln!("{line}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(line)) => {
            eprintln!("error: {line}");
            ExitCode::from(2)
        }
    }
}
