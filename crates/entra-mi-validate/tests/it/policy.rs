//! Policies on roles, scopes, token type and the calling application.

use entra_mi_validate::{Check, Policy};
use serde_json::json;

use crate::support::{ROLE, World};

#[tokio::test]
async fn each_requirement_refuses_with_its_check() {
    let w = World::start().await;
    let v = w.validator();
    let app = w.token(json!({}));
    let user = w.token(json!({"idtyp": null, "scp": "Orders.Read.All user_impersonation", "sub": "someone-else", "roles": null}));
    let check = |token: &str, p: Policy| {
        let v = v.clone();
        let token = token.to_owned();
        async move {
            v.validate_with(&token, &p)
                .await
                .map(drop)
                .map_err(|e| e.check())
        }
    };
    assert_eq!(check(&app, Policy::new()).await, Ok(()));
    assert_eq!(
        check(&app, Policy::new().require_roles([ROLE, "Orders.Write"])).await,
        Err(Check::Role)
    );
    assert_eq!(
        check(&app, Policy::new().require_any_role(["Orders.Write", ROLE])).await,
        Ok(())
    );
    assert_eq!(
        check(&app, Policy::new().require_any_role(["Orders.Write"])).await,
        Err(Check::Role)
    );
    assert_eq!(check(&app, Policy::new().app_only()).await, Ok(()));
    assert_eq!(
        check(&user, Policy::new().app_only()).await,
        Err(Check::TokenType)
    );
    assert_eq!(
        check(
            &user,
            Policy::new().require_any_scope(["user_impersonation"])
        )
        .await,
        Ok(())
    );
    assert_eq!(
        check(
            &app,
            Policy::new().require_any_scope(["user_impersonation"])
        )
        .await,
        Err(Check::Scope)
    );
    let caller = w.caller.client_id.to_uppercase();
    assert_eq!(
        check(&app, Policy::new().allowed_callers([caller])).await,
        Ok(())
    );
    assert_eq!(
        check(
            &app,
            Policy::new().allowed_callers(["11111111-0000-0000-0000-000000000000"])
        )
        .await,
        Err(Check::Caller)
    );
    // v2 tokens name the caller in `azp`.
    let v2 = w.token(json!({"appid": null, "azp": "22222222-0000-0000-0000-000000000000"}));
    assert_eq!(
        check(
            &v2,
            Policy::new().allowed_callers(["22222222-0000-0000-0000-000000000000"])
        )
        .await,
        Ok(())
    );
    // Without `idtyp`, an app-only token is one without `scp` whose `oid` is its `sub`.
    let no_idtyp = w.token(json!({"idtyp": null}));
    assert_eq!(check(&no_idtyp, Policy::new().app_only()).await, Ok(()));
}

#[tokio::test]
async fn claims_accessors() {
    let w = World::start().await;
    let v = w.validator();
    let c = v
        .validate(&w.token(json!({"scp": "a b  c"})))
        .await
        .unwrap();
    assert_eq!(c.audience(), Some(crate::support::AUDIENCE));
    assert_eq!(c.tenant_id(), Some(w.tid().as_str()));
    assert_eq!(c.object_id(), Some(w.caller.object_id.as_str()));
    assert_eq!(c.subject(), Some(w.caller.object_id.as_str()));
    assert_eq!(c.app_id(), Some(w.caller.client_id.as_str()));
    assert_eq!(c.roles().collect::<Vec<_>>(), vec![ROLE]);
    assert_eq!(c.scopes().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    assert_eq!(c.version(), Some("1.0"));
    assert!(c.expires_at_unix().unwrap() > w.clock.unix_secs());
    assert!(c.expires_at().is_some());
    assert_eq!(c.get_str("xms_mirid"), Some(w.caller.resource_id.as_str()));
    assert_eq!(c.as_map().len(), 17);
}
