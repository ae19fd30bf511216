#![doc = include_str!("../README.md")]
//!
//! # Exit codes
//!
//! The same for every subcommand (messages on stderr, prefixed `entra-mi: `,
//! never a secret):
//!
//! | code | when |
//! |---|---|
//! | 0 | success |
//! | 1 | anything that depends on the environment: no token, an unreachable or refusing endpoint, an expired token, a user-assigned selector the detected source cannot honour, an app role the API does not define, an invalid token given to `validate` |
//! | 2 | only what the command line alone shows wrong: a missing, conflicting or malformed flag (clap usage errors) |
//!
//! So flag values the command line alone can judge (a malformed GUID, audience, URL, range)
//! are checked by clap's value parsers, and every failure at run time is 1: the same command
//! line is never 2 in one environment and 0 in another.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod claims;
mod credential;
mod doctor;
mod emulator;
mod graph;
mod loopback;
mod output;
mod perms;
mod printable;
mod progress;
mod token;
mod validate;
mod values;

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

/// Exit code for every failure that depends on the environment (clap's usage errors exit 2).
const EXIT_FAILURE: u8 = 1;

const EXAMPLES: &str = "\
Examples:
  entra-mi token --resource https://graph.microsoft.com
  entra-mi token --scope https://management.azure.com//.default --output raw
  entra-mi doctor --resource api://11111111-2222-3333-4444-555555555555
  entra-mi perms grant --identity orders-api --api graph --role User.Read.All
  entra-mi validate --audience api://orders --tenant <tid> --role Orders.Read < tokens.txt
  entra-mi emulator --identity orders-api --print-env
  entra-mi completions bash > /etc/bash_completion.d/entra-mi

Exit codes (every subcommand):
  0  success
  1  anything that depends on the environment: no token, an unreachable or refusing
     endpoint, an expired token, a user-assigned selector the detected source cannot
     honour, an app role the API does not define, an invalid token given to `validate`
  2  only what the command line alone shows wrong: a missing, conflicting or malformed
     flag (clap usage errors)";

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

impl Command {
    /// What the command line alone shows wrong beyond what clap's declarations catch (a
    /// combination of flags): a usage error, exit 2.
    fn check(&self) -> Result<(), clap::Error> {
        let conflict = |path: &[&str], message: String| {
            usage_error(path, ErrorKind::ArgumentConflict, message)
        };
        match self {
            Command::Token(args) => args.check().map_err(|m| conflict(&["token"], m)),
            Command::Doctor(args) => args.check().map_err(|m| conflict(&["doctor"], m)),
            Command::Perms(cmd) => cmd
                .check()
                .map_err(|(name, m)| conflict(&["perms", name], m)),
            Command::Emulator(args) => args
                .check()
                .map_err(|m| usage_error(&["emulator"], ErrorKind::ValueValidation, m)),
            Command::Validate(_) | Command::Completions { .. } => Ok(()),
        }
    }
}

/// A clap usage error of the subcommand at `path`, formatted and exiting (2) like the errors
/// clap finds itself.
fn usage_error(path: &[&str], kind: ErrorKind, message: String) -> clap::Error {
    fn at(cmd: &mut clap::Command, path: &[&str], kind: ErrorKind, message: String) -> clap::Error {
        match path.split_first() {
            Some((name, rest)) => match cmd.find_subcommand_mut(name) {
                Some(sub) => at(sub, rest, kind, message),
                None => cmd.error(kind, message),
            },
            None => cmd.error(kind, message),
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    at(&mut cmd, path, kind, message)
}

/// A failure at run time: what to print on stderr. Every one exits 1; what the command line
/// alone shows wrong is found by clap before anything runs (exit 2).
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<entra_mi::Error> for Failure {
    fn from(e: entra_mi::Error) -> Self {
        Failure::new(e.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.command.check() {
        e.exit();
    }
    let result = match cli.command {
        Command::Token(args) => token::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Emulator(args) => emulator::run(args).await,
        Command::Perms(cmd) => perms::run(cmd).await,
        Command::Validate(args) => validate::run(args).await,
        Command::Completions { shell } => {
            // Into memory first: the generator panics when a write fails.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "entra-mi", &mut script);
            output::emit(script)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Nothing is left to report to if standard error is gone too.
            let _ = writeln!(
                std::io::stderr(),
                "entra-mi: {}",
                printable::lines(&failure.message)
            );
            ExitCode::from(EXIT_FAILURE)
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
