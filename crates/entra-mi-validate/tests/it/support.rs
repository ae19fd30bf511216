//! Shared by the integration tests: an emulator, validators pointed at it, and token forging.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_mi_emulator::{ApiApp, Emulator, Identity};
use entra_mi_validate::{ManualClock, TokenValidator, TokenValidatorBuilder};
use serde_json::{Value, json};

pub const AUDIENCE: &str = "api://orders";
pub const OTHER_TENANT: &str = "9b8c7d6e-1111-4222-8333-944455556666";
pub const ROLE: &str = "Orders.Read";

/// An emulator with one caller identity holding `Orders.Read` on `api://orders`, another
/// tenant, and no token caching (so every request mints).
pub struct World {
    pub em: Emulator,
    pub caller: Identity,
    pub clock: ManualClock,
}

impl World {
    pub async fn start() -> World {
        Self::with(|b| b).await
    }

    pub async fn with(
        f: impl FnOnce(entra_mi_emulator::EmulatorBuilder) -> entra_mi_emulator::EmulatorBuilder,
    ) -> World {
        let caller = Identity::user_assigned("caller");
        let builder = Emulator::builder()
            .identity(caller.clone())
            .api(ApiApp::new("Orders", AUDIENCE, &[ROLE, "Orders.Write"]))
            .roles(&caller.object_id, AUDIENCE, &[ROLE])
            .additional_tenant(OTHER_TENANT)
            .cache_tokens(false);
        let em = f(builder).start().await.unwrap();
        World {
            em,
            caller,
            clock: ManualClock::new(),
        }
    }

    pub fn tid(&self) -> String {
        self.em.tenant_id()
    }

    /// A validator for `api://orders` in the emulator's tenant, on the manual clock.
    pub fn builder(&self) -> TokenValidatorBuilder {
        TokenValidator::builder()
            .authority(self.em.base_url())
            .audience(AUDIENCE)
            .tenant(self.tid())
            .manual_clock(self.clock.clone())
            .request_timeout(Duration::from_secs(5))
    }

    pub fn validator(&self) -> TokenValidator {
        self.builder().build().unwrap()
    }

    /// A real token of the caller from the emulator's IMDS endpoint.
    pub async fn mi_token(&self, resource: &str) -> String {
        let url = format!(
            "{}?api-version=2018-02-01&resource={resource}&client_id={}",
            self.em.imds_token_url(),
            self.caller.client_id
        );
        let bytes = client()
            .get(url)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The claims of a v1 managed-identity token of the caller, times from the manual clock.
    pub fn claims(&self) -> Value {
        let now = self.clock.unix_secs();
        json!({
            "aud": AUDIENCE,
            "iss": self.em.issuer(),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "appid": self.caller.client_id,
            "appidacr": "2",
            "idp": self.em.issuer(),
            "idtyp": "app",
            "oid": self.caller.object_id,
            "roles": [ROLE],
            "sub": self.caller.object_id,
            "tid": self.tid(),
            "uti": "AAAAAAAAAAAAAAAAAAAAAA",
            "ver": "1.0",
            "xms_mirid": self.caller.resource_id,
        })
    }

    /// `claims()` with `changes` merged in (`null` removes a claim), signed by the emulator.
    pub fn token(&self, changes: Value) -> String {
        self.em.sign_token(&merge(self.claims(), changes))
    }
}

pub fn merge(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.` with `sign` producing the signature over `header.payload`.
pub fn jwt(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A 2048-bit RSA key the authority does not know.
pub struct ForeignKey(signature::RsaKeyPair);

impl ForeignKey {
    pub fn new() -> Self {
        ForeignKey(signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut sig,
            )
            .unwrap();
        sig
    }
}

/// An ES256 signature by a fresh P-256 key.
pub fn es256(msg: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    let doc =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
        .unwrap();
    let _ = key.public_key();
    key.sign(&rng, msg).unwrap().as_ref().to_vec()
}

/// An HMAC-SHA256 "signature" keyed with `secret`.
pub fn hs256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, msg).as_ref().to_vec()
}

/// The token's header `kid`.
pub fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// Replaces the token's payload, keeping header and signature.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}
