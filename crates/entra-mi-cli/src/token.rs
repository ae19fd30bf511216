//! `entra-mi token`.

use std::time::UNIX_EPOCH;

use clap::{Args, ValueEnum};
use entra_mi::{Audience, Environment, TokenRequest};

use crate::Failure;
use crate::credential::{self, CredentialKind, IdentityArgs};

/// Arguments of `entra-mi token`.
#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// The API, as a resource (`https://graph.microsoft.com`) or a `/.default` scope.
    #[arg(long, value_name = "URI", required_unless_present = "scope")]
    resource: Option<String>,
    /// The API as a scope (`https://graph.microsoft.com/.default`); same as --resource.
    #[arg(long, value_name = "SCOPE", conflicts_with = "resource")]
    scope: Option<String>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Which credential to use.
    #[arg(long, value_enum, default_value_t = CredentialKind::Auto)]
    credential: CredentialKind,
    /// The tenant to get the token from (credentials that can act in other tenants).
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// Give up after this many seconds, retries included.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// `json` (the fields of `az account get-access-token`) or `raw` (the token alone).
    #[arg(long, value_enum, default_value_t = TokenOutput::Json)]
    output: TokenOutput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TokenOutput {
    Json,
    Raw,
}

pub(crate) async fn run(args: TokenArgs) -> Result<(), Failure> {
    let input = args.resource.or(args.scope).unwrap_or_default();
    let audience = Audience::new(&input)?;
    let env = Environment::process();
    let chosen = credential::build(args.credential, &args.identity, &env)?;
    let credential = chosen.credential();
    let mut request = TokenRequest::new(audience.clone())
        .with_deadline(std::time::Duration::from_secs(args.timeout));
    if let Some(t) = args.tenant {
        request = request.with_tenant(t);
    }
    let token = crate::progress::step("getting a token", credential.get_token(&request)).await?;
    let source = chosen.source();
    match args.output {
        TokenOutput::Raw => println!("{}", token.secret()),
        TokenOutput::Json => {
            let expires_on = token.expires_on_unix();
            let local: chrono::DateTime<chrono::Local> = token
                .expires_on()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| chrono::DateTime::from_timestamp(d.as_secs() as i64, 0))
                .map(|utc| utc.with_timezone(&chrono::Local))
                .ok_or_else(|| Failure::auth("the token's expiry is not a valid time"))?;
            let json = serde_json::json!({
                "accessToken": token.secret(),
                "expiresOn": local.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "expires_on": expires_on,
                "tokenType": token.token_type(),
                "resource": audience.resource(),
                "source": source,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).map_err(|e| Failure::auth(e.to_string()))?
            );
        }
    }
    Ok(())
}
