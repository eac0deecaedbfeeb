//! The OpenAPI document matches the routes.

use serde_json::Value;

use crate::openapi::{ROUTES, document};

#[test]
fn document_covers_every_route() {
    let text = serde_json::to_string_pretty(&document()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths[*path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"]["200"].is_object(),
            "{method} {path} has no 200"
        );
        // Operations open to anyone (`security: []`, probes and the page) have no 401.
        let open = op["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            op["responses"]["401"].is_object(),
            !open,
            "{method} {path}: a 401 exactly when a token is needed"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        ROUTES.len(),
        "the document has routes ROUTES lacks"
    );
    let purge = &paths["/purge"]["post"];
    for status in ["200", "400", "401", "403", "413", "429"] {
        assert!(
            purge["responses"][status].is_object(),
            "POST /purge has no {status}"
        );
    }
    let headers: Vec<&str> = purge["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(headers, ["Surrogate-Key", "Fastly-Soft-Purge"]);
    let bodies = &purge["requestBody"]["content"]["application/json"]["schema"]["oneOf"];
    assert_eq!(bodies.as_array().map(Vec::len), Some(2));
}

#[test]
fn every_ref_resolves() {
    fn walk(doc: &Value, v: &Value, refs: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("local ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    *refs += 1;
                }
                map.values().for_each(|v| walk(doc, v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = 0;
    walk(&doc, &doc, &mut refs);
    assert!(refs > 10);
}
