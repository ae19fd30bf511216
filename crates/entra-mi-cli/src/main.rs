//! `entra-mi`: managed-identity tokens from the command line, a diagnosis of the environment,
//! and a local emulator of the managed-identity endpoints.
//!
//! Exit codes: 0 success, 1 authentication or endpoint failure (message on stderr, never a
//! secret), 2 usage error.

mod claims;
mod credential;
mod doctor;
mod emulator;
mod graph;
mod perms;
mod progress;
mod token;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for a failure to get a token or reach an endpoint.
const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error (clap uses the same).
const EXIT_USAGE: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  entra-mi token --resource https://graph.microsoft.com
  entra-mi token --scope https://management.azure.com//.default --output raw
  entra-mi doctor --resource api://11111111-2222-3333-4444-555555555555
  entra-mi perms grant --identity orders-api --api graph --role User.Read.All
  entra-mi validate --audience api://orders --tenant <tid> --role Orders.Read < tokens.txt
  entra-mi emulator --identity orders-api --print-env
  entra-mi completions bash > /etc/bash_completion.d/entra-mi";

/// Managed-identity tokens for Microsoft Entra ID protected APIs.
#[derive(Parser, Debug)]
#[command(name = "entra-mi", version, about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a token for an API, in the JSON shape of `az account get-access-token`.
    #[command(
        after_help = "Examples:\n  entra-mi token --resource https://graph.microsoft.com\n  entra-mi token --scope https://management.azure.com//.default --client-id 11111111-2222-3333-4444-555555555555 --output raw\n  entra-mi token --resource https://vault.azure.net --credential azure-cli --tenant contoso.onmicrosoft.com"
    )]
    Token(token::TokenArgs),
    /// Explain which credential and source would be used, check the endpoint, decode a token.
    #[command(
        after_help = "Examples:\n  entra-mi doctor\n  entra-mi doctor --resource api://11111111-2222-3333-4444-555555555555 --output json"
    )]
    Doctor(doctor::DoctorArgs),
    /// List, grant and revoke a managed identity's app roles on an API (Microsoft Graph).
    #[command(subcommand)]
    Perms(perms::PermsCommand),
    /// Check tokens read from standard input (one per line) as the API they are for would:
    /// one JSON answer per line. Exit 0 if all were valid, 1 if any was not.
    #[command(
        after_help = "Each line of standard input is a token (blank lines are skipped); each gets one line:\n  {\"valid\":true,\"claims\":{...}}  or  {\"valid\":false,\"error\":\"<check>: <detail>\"}\nwhere <check> is malformed, algorithm, key, signature, issuer, tenant, audience, expired,\nnot_yet_valid, role or discovery.\n\nExamples:\n  entra-mi token --resource api://orders --output raw | entra-mi validate --audience api://orders --tenant 4e7a1f2c-5b3d-4c8e-9a61-0d2f3b4c5e6f --role Orders.Read\n  entra-mi validate --audience api://orders --audience 11111111-2222-3333-4444-555555555555 --any-tenant < tokens.txt"
    )]
    Validate(validate::ValidateArgs),
    /// Run a local emulator of the managed-identity endpoints until Ctrl-C.
    #[command(
        after_help = "Examples:\n  entra-mi emulator --identity orders-api --role orders-api,https://graph.microsoft.com,User.Read.All\n  entra-mi emulator --print-env > emulator.env &   # then: set -a; . ./emulator.env; set +a\n  entra-mi emulator --config emulator.json --env-for app-service"
    )]
    Emulator(emulator::EmulatorArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  entra-mi completions bash > /etc/bash_completion.d/entra-mi"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A failure that ends the command: what to print and which exit code to use.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn auth(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<entra_mi::Error> for Failure {
    fn from(e: entra_mi::Error) -> Self {
        match e {
            entra_mi::Error::InvalidAudience { .. } => Failure::usage(e.to_string()),
            other => Failure::auth(other.to_string()),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Perms(cmd) => perms::run(cmd).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "entra-mi",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("entra-mi: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
