//! `entra-mi token` never prints a token that has already expired: an endpoint whose
//! `expires_on` is in the past (a badly set clock) makes it exit 1, whatever `expires_in` says.

use crate::common;

use common::run;
use entra_mi_emulator::{Emulator, Endpoint, ResponseShape};

#[tokio::test(flavor = "multi_thread")]
async fn an_already_expired_token_is_never_printed() {
    let emu = Emulator::builder().start().await.unwrap();
    // IMDS sends `expires_in` (right) and `expires_on` (a day in the past); App Service sends
    // only `expires_on`.
    for (endpoint, env) in [
        (
            Endpoint::Imds,
            vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())],
        ),
        (
            Endpoint::AppService,
            vec![
                ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
                ("IDENTITY_HEADER", emu.identity_header()),
            ],
        ),
    ] {
        emu.set_response_shape(endpoint, ResponseShape::ExpiresOnOffset(-100_000));
        let r = tokio::task::spawn_blocking(move || {
            run(
                &env,
                &["token", "--resource", "https://graph.microsoft.com"],
            )
        })
        .await
        .unwrap();
        assert_eq!(r.code, 1, "{endpoint:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{endpoint:?}: printed {}", r.stdout);
        assert!(
            r.stderr.contains("already-expired token"),
            "{endpoint:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("eyJ"), "{}", r.stderr);
        emu.set_response_shape(endpoint, ResponseShape::Standard);
    }
}
