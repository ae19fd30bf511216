//! The RSA signing key, its JWK, and JWT signing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::EmulatorError;

/// One RSA-2048 key pair, shared by every emulator in the process (Entra signs the tokens of
/// every tenant with the same published keys, so this is faithful, and it keeps test suites
/// from paying for a key generation per emulator).
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    kid: String,
    jwk: serde_json::Value,
}

static KEY: OnceCell<std::sync::Arc<SigningKey>> = OnceCell::const_new();

impl SigningKey {
    /// The process-wide key, generated on first use (off the async threads).
    pub(crate) async fn shared() -> Result<std::sync::Arc<SigningKey>, EmulatorError> {
        KEY.get_or_try_init(|| async {
            tokio::task::spawn_blocking(SigningKey::generate)
                .await
                .map_err(|e| EmulatorError::KeyGeneration(e.to_string()))?
                .map(std::sync::Arc::new)
        })
        .await
        .cloned()
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
        let jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "x5t": kid,
            "n": n,
            "e": e,
            "alg": "RS256",
        });
        Ok(SigningKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            kid,
            jwk,
        })
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// Signs `claims` as an RS256 JWT with `typ`, `alg`, `x5t` and `kid` headers.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}
