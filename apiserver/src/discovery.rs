//! Discovery documents of `subresources.k8s.kompox.dev/v1alpha1`.
//!
//! Only legacy discovery is served (kube-apiserver's aggregator falls back to it when `/apis`
//! does not answer in the aggregated v2 format, and serves `/apis` itself to clients).

use serde_json::{Value, json};

/// The API group served.
pub const GROUP: &str = "subresources.k8s.kompox.dev";
/// The version served.
pub const VERSION: &str = "v1alpha1";
/// `<group>/<version>`.
pub const GROUP_VERSION: &str = "subresources.k8s.kompox.dev/v1alpha1";

/// `GET /apis/<group>/<version>`: one entry per subresource, each with a kind and verbs.
///
/// `rendered` answers a `v1 List`; `attach`/`detach` answer the updated KompoxApp (group
/// `k8s.kompox.dev`).
#[must_use]
pub fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": "kompoxapps/rendered",
                "singularName": "",
                "namespaced": true,
                "group": "",
                "version": "v1",
                "kind": "List",
                "verbs": ["get"],
            },
            {
                "name": "kompoxdisks/attach",
                "singularName": "",
                "namespaced": true,
                "group": kompox_core::api::GROUP,
                "version": kompox_core::api::VERSION,
                "kind": "KompoxApp",
                "verbs": ["create"],
            },
            {
                "name": "kompoxdisks/detach",
                "singularName": "",
                "namespaced": true,
                "group": kompox_core::api::GROUP,
                "version": kompox_core::api::VERSION,
                "kind": "KompoxApp",
                "verbs": ["create"],
            },
        ],
    })
}

fn group_version_for_discovery() -> Value {
    json!({"groupVersion": GROUP_VERSION, "version": VERSION})
}

/// `GET /apis/<group>`.
#[must_use]
pub fn api_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [group_version_for_discovery()],
        "preferredVersion": group_version_for_discovery(),
    })
}

/// `GET /apis`.
#[must_use]
pub fn api_group_list() -> Value {
    let mut group = api_group();
    if let Some(obj) = group.as_object_mut() {
        obj.remove("kind");
        obj.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
}
