//! `entra-mi token`.

use std::time::UNIX_EPOCH;

use clap::{Args, ValueEnum};
use entra_mi::{Audience, Environment, TokenRequest};

use crate::credential::{self, CredentialKind, IdentityArgs};
use crate::{Failure, output, printable, values};

/// Arguments of `entra-mi token`.
#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// The API, as a resource (`https://graph.microsoft.com`) or a `/.default` scope.
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "scope",
        value_parser = values::audience
    )]
    resource: Option<Audience>,
    /// The API as a scope (`https://graph.microsoft.com/.default`); same as --resource.
    #[arg(
        long,
        value_name = "SCOPE",
        conflicts_with = "resource",
        value_parser = values::audience
    )]
    scope: Option<Audience>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Which credential to use.
    #[arg(long, value_enum, default_value_t = CredentialKind::Auto)]
    credential: CredentialKind,
    /// The tenant to get the token from (credentials that can act in other tenants).
    #[arg(long, value_name = "TENANT", value_parser = values::tenant)]
    tenant: Option<String>,
    /// Give up after this many seconds, retries included.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
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

impl TokenArgs {
    /// Flag combinations clap cannot express.
    pub(crate) fn check(&self) -> Result<(), String> {
        credential::check_selector(self.credential, &self.identity)
    }
}

pub(crate) async fn run(args: TokenArgs) -> Result<(), Failure> {
    let Some(audience) = args.resource.or(args.scope) else {
        // clap requires one of the two.
        return Err(Failure::new("no --resource or --scope"));
    };
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
        // The token alone, exactly as issued: it is what the caller asked for.
        TokenOutput::Raw => output::emit(format!("{}\n", token.secret())),
        TokenOutput::Json => {
            let expires_on = token.expires_on_unix();
            let local: chrono::DateTime<chrono::Local> = token
                .expires_on()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| chrono::DateTime::from_timestamp(d.as_secs() as i64, 0))
                .map(|utc| utc.with_timezone(&chrono::Local))
                .ok_or_else(|| Failure::new("the token's expiry is not a valid time"))?;
            let mut fields = serde_json::json!({
                "expiresOn": local.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
                "expires_on": expires_on,
                "tokenType": token.token_type(),
                "resource": audience.resource(),
                "source": source,
            });
            // Every field but the token itself is shown to people as well.
            printable::json(&mut fields);
            fields["accessToken"] = token.secret().into();
            let text =
                serde_json::to_string_pretty(&fields).map_err(|e| Failure::new(e.to_string()))?;
            output::emit(text + "\n")
        }
    }
}
