//! The RSA signing keys, their JWKs, JWT signing, and the key ring of an emulator (rotation).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::EmulatorError;

/// One RSA-2048 key pair. The first is shared by every emulator in the process (Entra signs
/// the tokens of every tenant with the same published keys, so this is faithful, and it keeps
/// test suites from paying for a key generation per emulator); rotations make new ones.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    /// The JWK as Entra publishes it: `kty`, `use`, `kid`, `x5t`, `n`, `e` — no `alg`.
    jwk: serde_json::Value,
}

static KEY: OnceCell<Arc<SigningKey>> = OnceCell::const_new();

impl SigningKey {
    /// The process-wide key, generated on first use (off the async threads).
    pub(crate) async fn shared() -> Result<Arc<SigningKey>, EmulatorError> {
        KEY.get_or_try_init(SigningKey::fresh).await.cloned()
    }

    /// A new key, generated on the blocking pool.
    pub(crate) async fn fresh() -> Result<Arc<SigningKey>, EmulatorError> {
        tokio::task::spawn_blocking(SigningKey::generate)
            .await
            .map_err(|e| EmulatorError::KeyGeneration(e.to_string()))?
            .map(Arc::new)
    }

    fn generate() -> Result<SigningKey, EmulatorError> {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| EmulatorError::KeyGeneration(e.to_string()))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| EmulatorError::KeyGeneration(e.to_string()))?;
        let n = URL_SAFE_NO_PAD.encode(private.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(private.e().to_bytes_be());
        // Entra's key ids look like a base64url SHA-1 thumbprint (27 characters); a random one
        // of the same shape will do. Entra repeats it as `x5t`.
        let kid_bytes: [u8; 20] = std::array::from_fn(|_| fastrand::u8(..));
        let kid = URL_SAFE_NO_PAD.encode(kid_bytes);
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .map_err(|e| EmulatorError::KeyGeneration(e.to_string()))?;
        let jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": n,
            "e": e,
        });
        Ok(SigningKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding,
            kid,
            jwk,
        })
    }

    /// The public key as a JWK (no `issuer` member: the v1 key set's form).
    pub(crate) fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key, for verifying what the emulator signed.
    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `claims` as an RS256 JWT with `typ`, `alg`, `x5t` and `kid` headers.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// A key in the published key sets.
struct Published {
    key: Arc<SigningKey>,
    /// `Some(tenant)`: a key only for that tenant's tokens (its v2 `issuer` member names the
    /// tenant; it is left out of v1 key sets, which cannot say so).
    tenant: Option<String>,
}

/// The keys an emulator signs with and publishes.
pub(crate) struct KeyRing {
    current: Arc<SigningKey>,
    /// Newest first; the current key is among them.
    published: Vec<Published>,
}

impl KeyRing {
    pub(crate) fn new(current: Arc<SigningKey>) -> Self {
        KeyRing {
            published: vec![Published {
                key: current.clone(),
                tenant: None,
            }],
            current,
        }
    }

    /// The key tokens are signed with.
    pub(crate) fn current(&self) -> Arc<SigningKey> {
        self.current.clone()
    }

    /// Makes `key` the signing key, published first; the previous keys stay published.
    pub(crate) fn rotate(&mut self, key: Arc<SigningKey>) {
        self.published.insert(
            0,
            Published {
                key: key.clone(),
                tenant: None,
            },
        );
        self.current = key;
    }

    /// Publishes `key` for `tenant`'s tokens only; it does not sign by default.
    pub(crate) fn add_tenant_key(&mut self, key: Arc<SigningKey>, tenant: String) {
        self.published.push(Published {
            key,
            tenant: Some(tenant),
        });
    }

    /// Stops publishing every key but the signing key.
    pub(crate) fn drop_retired(&mut self) {
        let current = self.current.kid.clone();
        self.published.retain(|p| p.key.kid == current);
    }

    /// The published key with this id.
    pub(crate) fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.published
            .iter()
            .find(|p| p.key.kid == kid)
            .map(|p| p.key.clone())
    }

    /// The ids of the published keys, newest first.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.published.iter().map(|p| p.key.kid.clone()).collect()
    }

    /// A key set: the v1 form (no `issuer`, no tenant keys), or the v2 form whose every key
    /// names its issuer (`v2_issuer` holds `{tenantid}`, replaced for tenant keys).
    pub(crate) fn key_set(&self, v2_issuer: Option<&str>) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .published
            .iter()
            .filter_map(|p| {
                let mut jwk = p.key.jwk.clone();
                match (v2_issuer, &p.tenant) {
                    (None, Some(_)) => return None,
                    (None, None) => {}
                    (Some(template), tenant) => {
                        let issuer = match tenant {
                            Some(t) => template.replace("{tenantid}", t),
                            None => template.to_owned(),
                        };
                        jwk["issuer"] = serde_json::Value::String(issuer);
                    }
                }
                Some(jwk)
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}
