//! `entra-mi validate`: the protected API's view of tokens read from standard input, one per
//! line, one JSON answer per line.

use std::ffi::OsStr;
use std::io::Write as _;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{ArgGroup, Args};
use entra_mi_validate::{Check, MAX_TOKEN_LEN, Policy, TokenValidator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, BufReader};

use crate::{Failure, printable};

/// The variable that names the authority host, as the Azure SDKs read it.
const AUTHORITY_ENV: &str = "AZURE_AUTHORITY_HOST";

/// Check tokens read from standard input (one per line) as the API they are for would.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("tenant_choice").required(true).args(["tenants", "any_tenant"])))]
pub(crate) struct ValidateArgs {
    /// Accept tokens whose `aud` is exactly this (App ID URI or client id); repeatable.
    #[arg(long = "audience", value_name = "AUD", required = true, value_parser = non_empty)]
    audiences: Vec<String>,
    /// Accept tokens of this tenant (its id, the `tid` claim); repeatable.
    #[arg(long = "tenant", value_name = "TID", value_parser = tenant_id)]
    tenants: Vec<String>,
    /// Accept tokens of any tenant (discovery through `common`).
    #[arg(long)]
    any_tenant: bool,
    /// The authority host [default: $AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com].
    /// Plain http only for loopback hosts.
    #[arg(long, value_name = "URL", value_parser = authority)]
    authority: Option<String>,
    /// Require this app role in the token's `roles`; repeatable (all are required).
    #[arg(long = "role", value_name = "ROLE", value_parser = non_empty)]
    roles: Vec<String>,
    /// How far `exp` and `nbf` may be off, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    clock_skew: u64,
    /// Never set: an argument that is not an option (a token, most likely) is refused without
    /// being repeated in the error.
    #[arg(hide = true, value_parser = NotATokenArgument)]
    _stray: Vec<String>,
}

/// Refuses a positional argument with a usage error (exit 2) that does not quote it: the
/// usual one would print the token back (into a terminal's scrollback or a CI log).
#[derive(Clone, Debug)]
struct NotATokenArgument;

impl TypedValueParser for NotATokenArgument {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        _value: &OsStr,
    ) -> Result<String, clap::Error> {
        Err(cmd.clone().error(
            ErrorKind::UnknownArgument,
            "unexpected argument (not shown): tokens are read from standard input, one per line, never from the command line",
        ))
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

fn tenant_id(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if !s.is_empty() && s.chars().all(ok) {
        Ok(s.to_owned())
    } else {
        Err("not a tenant id (letters, digits, '-', '_', '.')".into())
    }
}

fn authority(s: &str) -> Result<String, String> {
    TokenValidator::builder()
        .authority(s)
        .audience("check")
        .any_tenant()
        .build()
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

pub(crate) async fn run(args: ValidateArgs) -> Result<(), Failure> {
    let authority = args.authority.clone().unwrap_or_else(|| {
        std::env::var(AUTHORITY_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| entra_mi_validate::DEFAULT_AUTHORITY.to_owned())
    });
    let mut builder = TokenValidator::builder()
        .authority(&authority)
        .clock_skew(std::time::Duration::from_secs(args.clock_skew))
        .policy(Policy::new().require_roles(args.roles.iter().cloned()));
    for a in &args.audiences {
        builder = builder.audience(a);
    }
    builder = if args.any_tenant {
        builder.any_tenant()
    } else {
        args.tenants.iter().fold(builder, |b, t| b.tenant(t))
    };
    // Only the environment can make this fail (the flags were checked by clap): every token
    // is then answered with the reason, as a discovery failure.
    let validator = builder.build().map_err(|e| format!("{AUTHORITY_ENV}: {e}"));
    let mut input = BufReader::new(tokio::io::stdin());
    let (mut total, mut invalid) = (0_usize, 0_usize);
    let mut line = Vec::new();
    loop {
        let overflow = match read_line(&mut input, &mut line, MAX_TOKEN_LEN).await {
            Ok(Some(overflow)) => overflow,
            Ok(None) => break,
            Err(e) => return Err(Failure::new(format!("cannot read standard input: {e}"))),
        };
        let answer = match token_of(&line, overflow) {
            Ok(None) => continue,
            Ok(Some(token)) => match &validator {
                Ok(v) => v.validate(token).await.map_err(|e| e.to_string()),
                Err(reason) => Err(format!("{}: {reason}", Check::Discovery)),
            },
            Err(e) => Err(e),
        };
        total += 1;
        // Claims and details quote the token's text: what a terminal would act on is replaced.
        let out = match answer {
            Ok(claims) => {
                let mut claims = Value::Object(claims.as_map().clone());
                printable::json(&mut claims);
                json!({ "valid": true, "claims": claims })
            }
            Err(e) => {
                invalid += 1;
                json!({ "valid": false, "error": printable::text(&e) })
            }
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::new(format!("cannot write standard output: {e}")))?;
    }
    if invalid > 0 {
        return Err(Failure::new(format!(
            "{invalid} of {total} tokens were not valid"
        )));
    }
    Ok(())
}

/// The token of a line: `None` for a blank line; an answer for a line over the limit or not
/// UTF-8 (`malformed`).
fn token_of(line: &[u8], overflow: bool) -> Result<Option<&str>, String> {
    if overflow {
        return Err(format!(
            "{}: the line is over {MAX_TOKEN_LEN} bytes",
            Check::Malformed
        ));
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(format!("{}: the line is not UTF-8", Check::Malformed));
    };
    let token = text.trim();
    Ok((!token.is_empty()).then_some(token))
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `cap` bytes: `Some(true)`
/// if it was longer (the rest is skipped), `None` at the end of input.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut overflow, mut any) = (false, false);
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(any.then_some(overflow));
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if buf.len() + chunk.len() > cap {
            overflow = true;
        } else if !overflow {
            buf.extend_from_slice(chunk);
        }
        input.consume(used);
        if done {
            if buf.last() == Some(&b'\r') && !overflow {
                buf.pop();
            }
            return Ok(Some(overflow));
        }
    }
}
