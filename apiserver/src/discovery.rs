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
    let app = (
        kompox_core::api::GROUP,
        kompox_core::api::VERSION,
        "KompoxApp",
    );
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            subresource("kompoxapps/rendered", ("", "v1", "List"), "get"),
            subresource("kompoxdisks/attach", app, "create"),
            subresource("kompoxdisks/detach", app, "create"),
        ],
    })
}

/// One namespaced subresource `name` answering `(group, version, kind)` to `verb`.
fn subresource(name: &str, (group, version, kind): (&str, &str, &str), verb: &str) -> Value {
    json!({
        "name": name,
        "singularName": "",
        "namespaced": true,
        "group": group,
        "version": version,
        "kind": kind,
        "verbs": [verb],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_entries() {
        let list = api_resource_list();
        let r = &list["resources"];
        assert_eq!(list["groupVersion"], GROUP_VERSION);
        assert_eq!(
            (
                &r[0]["name"],
                &r[0]["group"],
                &r[0]["version"],
                &r[0]["kind"]
            ),
            (
                &json!("kompoxapps/rendered"),
                &json!(""),
                &json!("v1"),
                &json!("List")
            )
        );
        assert_eq!(r[0]["verbs"], json!(["get"]));
        for (i, sub) in [(1, "attach"), (2, "detach")] {
            assert_eq!(r[i]["name"], format!("kompoxdisks/{sub}"));
            assert_eq!(r[i]["group"], "k8s.kompox.dev");
            assert_eq!(r[i]["version"], "v1alpha1");
            assert_eq!(r[i]["kind"], "KompoxApp");
            assert_eq!(r[i]["verbs"], json!(["create"]));
        }
        for e in r.as_array().into_iter().flatten() {
            assert_eq!(
                (&e["namespaced"], &e["singularName"]),
                (&json!(true), &json!(""))
            );
        }
        assert_eq!(r.as_array().map(Vec::len), Some(3));
    }
}
