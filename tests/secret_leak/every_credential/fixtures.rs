//! The secrets, the evidence collected, and the scripted answers and stand-ins the test uses.

use super::*;

pub(super) const CLIENT_SECRET: &str = "CANARY-client-secret~4f1d+/=";
pub(super) const WRONG_SECRET: &str = "CANARY-wrong-client-secret-88a0";
pub(super) const IDENTITY_HEADER: &str = "CANARY-identity-header-2b9e";
pub(super) const MSI_SECRET: &str = "CANARY-msi-secret-c41f";
pub(super) const ARC_KEY: &str = "CANARYARCKEY0d5e7a91";
pub(super) const PFX_PASSWORD: &str = "CANARY-pfx-password-61";
/// A token in a body served by a scripted server.
pub(super) const BODY_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.CANARY-BODY-TOKEN-93.c2ln";
/// A federated token file that is not accepted.
pub(super) const WI_FAKE: &str = "eyJhbGciOiJub25lIn0.CANARY-WI-TOKEN-17.c2ln";
/// The token the stand-in `az` prints.
pub(super) const CLI_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.CANARY-CLI-TOKEN-5a.c2ln";
/// Tokens the stand-in `az` prints in odd places of a failure.
pub(super) const CLI_STDERR_TOKENS: [&str; 3] = [
    "eyJ0eXAiOiJKV1QifQ.CANARY-CLI-NEWLINE-01.c2ln",
    "eyJ0eXAiOiJKV1QifQ.CANARY-CLI-QUOTED-02.c2ln",
    "eyJ0eXAiOiJKV1QifQ.CANARY-CLI-JSON-03.c2ln",
];
pub(super) const AUD: &str = "api://leak-test";

/// What the test showed and what must never be in it.
#[derive(Default)]
pub(super) struct Evidence {
    pub(super) shown: Vec<String>,
    pub(super) secrets: Vec<String>,
    pub(super) errors: usize,
}

impl Evidence {
    pub(super) fn debug(&mut self, what: &str, v: &dyn Debug) {
        self.shown.push(format!("{what}: {v:?}\n{v:#?}"));
    }
    pub(super) fn both<T: Debug + Display + ?Sized>(&mut self, what: &str, v: &T) {
        self.shown.push(format!("{what}: {v}\n{v:?}\n{v:#?}"));
    }
    /// An error: `Display`, `Debug`, `{:#?}` and its whole `source()` chain.
    pub(super) fn error(&mut self, what: &str, e: &(dyn std::error::Error + 'static)) {
        self.errors += 1;
        let mut out = format!("{what}: {e}\n{e:?}\n{e:#?}");
        let mut next = e.source();
        for _ in 0..16 {
            let Some(s) = next else { break };
            out.push_str(&format!("\n  caused by: {s}\n{s:?}"));
            next = s.source();
        }
        self.shown.push(out);
    }
    pub(super) fn result<T: Debug>(&mut self, what: &str, r: Result<T, entra_mi::Error>) {
        match r {
            Ok(v) => self.debug(what, &v),
            Err(e) => self.error(what, &e),
        }
    }
    /// A token: kept as a secret, and shown every way it can be.
    pub(super) fn token(&mut self, what: &str, t: &AccessToken) {
        self.secrets.push(t.secret().to_owned());
        self.both(what, t);
        self.debug(what, &t.header_value());
    }
    pub(super) fn secret(&mut self, s: impl Into<String>) {
        self.secrets.push(s.into());
    }
}

pub(super) fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

pub(super) fn arm() -> TokenRequest {
    TokenRequest::new(Audience::new("https://management.azure.com/").unwrap())
}

pub(super) fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d =
            std::env::temp_dir().join(format!("entra-mi-leak-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An Entra-style error body that also carries token fields.
pub(super) fn error_body(code: &str) -> serde_json::Value {
    json!({
        "error": code,
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0\r\nCorrelation ID: 1",
        "error_codes": [7000215],
        "trace_id": "0",
        "correlation_id": "1",
        "access_token": BODY_TOKEN,
        "refresh_token": BODY_TOKEN,
        "id_token": BODY_TOKEN,
        "client_secret": CLIENT_SECRET,
        "client_assertion": WI_FAKE,
    })
}

/// Failure answers, each of which carries a secret somewhere in its body.
pub(super) fn bad_replies(transient: bool) -> Vec<Reply> {
    let mut replies = vec![
        Reply::json(400, error_body("invalid_request")),
        Reply::json(401, error_body("invalid_client")),
        Reply::json(403, error_body("unauthorized_client")),
        Reply::body(
            200,
            "text/html",
            format!("<html><body>sign in {BODY_TOKEN}</body></html>"),
        ),
        Reply::body(
            200,
            "application/json",
            format!("{{\"access_token\":\"{BODY_TOKEN}\",\"expires_in\":\"35"),
        ),
        Reply::json(
            200,
            json!({"access_token": BODY_TOKEN, "expires_in": BODY_TOKEN}),
        ),
        Reply::json(
            200,
            json!({"access_token": BODY_TOKEN, "expires_on": "1000000000", "token_type": "Bearer"}),
        ),
        Reply::json(
            200,
            json!({"access_token": 5, "refresh_token": BODY_TOKEN, "expires_in": "3599"}),
        ),
        Reply::json(
            200,
            json!({"access_token": BODY_TOKEN, "expires_in": "3599", "token_type": format!("Bearer {BODY_TOKEN}")}),
        ),
        Reply::body(200, "text/plain", format!("access_token={BODY_TOKEN}")),
    ];
    if transient {
        replies.push(Reply::body(
            502,
            "text/html",
            format!("<html><body>bad gateway {BODY_TOKEN}</body></html>"),
        ));
        replies.push(Reply::Raw(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{{\"access_token\":\"{BODY_TOKEN}\""
            )
            .into_bytes(),
        ));
        replies.push(Reply::json(500, error_body("server_error")));
        replies.push(Reply::json(429, error_body("throttled")).with_header("Retry-After", "0"));
        replies.push(Reply::Close);
    }
    replies
}

/// The environment of a managed-identity source pointed at a scripted server.
pub(super) type VarsFor = fn(&RawServer) -> Vec<(String, String)>;

/// Serves every bad reply to a credential built for a scripted server, one token request
/// each (`before` is served first each time: Arc's challenge). Returns the server.
pub(super) async fn refuse_all<C: TokenCredential + Debug>(
    ev: &mut Evidence,
    what: &str,
    make: impl Fn(&RawServer) -> C,
    request: &TokenRequest,
    transient: bool,
    before: Option<Reply>,
) -> RawServer {
    let server = RawServer::start(Reply::json(400, error_body("invalid_request"))).await;
    let cred = make(&server);
    ev.debug(what, &cred);
    for reply in bad_replies(transient) {
        if let Some(b) = &before {
            server.push(b.clone());
        }
        server.push(reply);
        match cred.get_token(request).await {
            Ok(t) => ev.token(what, &t),
            Err(e) => ev.error(what, &e),
        }
    }
    server
}

/// Writes an executable stand-in `az` into a fresh directory.
pub(super) fn stand_in_az(tag: &str, body: &str) -> TempDir {
    let d = TempDir::new(tag);
    let path = d.path().join("az");
    support::script::write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
    d
}

pub(super) fn cli(dir: &TempDir) -> AzureCliCredential {
    AzureCliCredential::builder()
        .environment(env(&[(
            "PATH",
            &format!("{}:/usr/bin:/bin", dir.path().display()),
        )]))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub(super) struct Generated {
    pub(super) cert_der: Vec<u8>,
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
    pub(super) key_der: Vec<u8>,
}

pub(super) fn generate_certificate() -> Generated {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["daemon.example".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    Generated {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

pub(super) fn pkcs12(g: &Generated, password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        "1",
        p12_keystore::PrivateKey::from_der(&g.key_der).unwrap(),
        [p12_keystore::Certificate::from_der(&g.cert_der).unwrap()],
    );
    store.add_entry(
        "daemon",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}

/// The `client_assertion` values a scripted token endpoint received.
pub(super) fn assertions(server: &RawServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}
