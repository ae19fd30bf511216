//! Secrets configured on the emulator (identity header, MSI secret, app client secrets) never
//! show in `Debug` output, plain or pretty; the non-secret settings still do.

use entra_mi_emulator::{App, Emulator};

const CANARIES: [&str; 4] = ["H-CANARY", "M-CANARY", "S-CANARY", "T-CANARY"];

fn assert_no_canary(shown: &str) {
    for canary in CANARIES {
        assert!(!shown.contains(canary), "{canary} leaked: {shown}");
    }
}

#[test]
fn builder_and_app_debug_redact_secrets() {
    let app = App::new("visible-app")
        .with_secret("S-CANARY")
        .with_secret("T-CANARY");
    let builder = Emulator::builder()
        .tenant_id("visible-tenant")
        .identity_header("H-CANARY")
        .msi_secret("M-CANARY")
        .app(app.clone());
    for shown in [
        format!("{app:?}"),
        format!("{app:#?}"),
        format!("{builder:?}"),
        format!("{builder:#?}"),
    ] {
        assert_no_canary(&shown);
        assert!(shown.contains("visible-app"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
    let shown = format!("{builder:?}");
    assert!(shown.contains("visible-tenant"), "{shown}");
    assert!(shown.contains("identity_header"), "{shown}");
    assert!(shown.contains("msi_secret"), "{shown}");
    // The app's secrets show as a count.
    assert!(format!("{app:?}").contains("2 <redacted>"), "{app:?}");

    // Without secrets set, nothing pretends there is one.
    let plain = format!("{:?}", Emulator::builder());
    assert!(plain.contains("identity_header: None"), "{plain}");
    assert!(plain.contains("msi_secret: None"), "{plain}");
}

#[tokio::test]
async fn a_running_emulator_debug_redacts_secrets() {
    let em = Emulator::builder()
        .identity_header("H-CANARY")
        .msi_secret("M-CANARY")
        .app(App::new("a").with_secret("S-CANARY"))
        .start()
        .await
        .unwrap();
    assert_eq!(em.identity_header(), "H-CANARY");
    assert_eq!(em.msi_secret(), "M-CANARY");
    assert_no_canary(&format!("{em:?}"));
    assert_no_canary(&format!("{em:#?}"));
    em.shutdown().await;
}
