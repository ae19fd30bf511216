//! What the emulated Microsoft Graph keeps: its request counter and queued rejections, the
//! tenant's APIs and the app-role assignments made through it (they feed the `roles` claim
//! of tokens minted afterwards).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::lock;
use crate::directory::ApiApp;
use crate::model::GraphRejection;

/// The Graph endpoint's own state: counters and queued rejections.
#[derive(Default)]
pub(crate) struct GraphState {
    /// Every request, rejected ones included.
    pub(crate) requests: AtomicUsize,
    /// Turn down every request with `invalid_token`.
    pub(crate) always: AtomicBool,
    pub(crate) rejections: Mutex<VecDeque<GraphRejection>>,
}

/// An app-role assignment: `principal_id` holds role `app_role_id` of API `resource_id`.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub(crate) id: String,
    pub(crate) principal_id: String,
    pub(crate) principal_name: String,
    pub(crate) resource_id: String,
    pub(crate) resource_name: String,
    pub(crate) app_role_id: String,
    pub(crate) created: String,
}

/// The APIs and the assignments.
pub(crate) struct PermsState {
    pub(crate) apis: Vec<ApiApp>,
    pub(crate) assignments: Mutex<Vec<Assignment>>,
}

impl PermsState {
    pub(crate) fn new(mut custom: Vec<ApiApp>) -> Self {
        let mut apis = vec![ApiApp::microsoft_graph(), ApiApp::azure_resource_manager()];
        apis.append(&mut custom);
        PermsState {
            apis,
            assignments: Mutex::new(Vec::new()),
        }
    }

    /// The API whose tokens have `audience` (one of its identifier URIs or its app id).
    pub(crate) fn api_for(&self, audience: &str) -> Option<&ApiApp> {
        self.apis
            .iter()
            .find(|a| a.identifier_uris.iter().any(|u| u == audience))
    }

    /// The API whose service principal has object id `id` (ignoring case).
    pub(crate) fn api_by_object_id(&self, id: &str) -> Option<&ApiApp> {
        self.apis
            .iter()
            .find(|a| a.object_id.eq_ignore_ascii_case(id))
    }

    /// The role values assigned to `principal` on the API whose tokens have `audience`.
    pub(crate) fn assigned_roles(&self, principal: &str, audience: &str) -> Vec<String> {
        let Some(api) = self.api_for(audience) else {
            return Vec::new();
        };
        lock(&self.assignments)
            .iter()
            .filter(|a| {
                a.principal_id.eq_ignore_ascii_case(principal) && a.resource_id == api.object_id
            })
            .filter_map(|a| api.app_roles.iter().find(|r| r.id == a.app_role_id))
            .map(|r| r.value.clone())
            .collect()
    }
}
