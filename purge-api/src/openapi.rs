//! The admin API's routes and its OpenAPI 3.1 document (served at `/openapi.json`).

use serde_json::{Value, json};

use crate::auth::WWW_AUTHENTICATE;
use crate::request::{MAX_BODY_BYTES, MAX_ITEM_BYTES, MAX_ITEMS, MAX_TAG_BYTES};

/// Every route of the admin listener: (method, OpenAPI path template).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/metrics"),
    ("POST", "/purge"),
    ("GET", "/purge/{id}"),
    ("GET", "/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/drain"),
    ("GET", "/status.json"),
    ("GET", "/"),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn responses_common(mut responses: Value) -> Value {
    responses["401"] = json!({
        "description": "Missing or invalid bearer token.",
        "headers": {"WWW-Authenticate": {
            "schema": {"type": "string", "example": WWW_AUTHENTICATE}
        }},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    responses["429"] = json!({
        "description": "Too many requests for this token.",
        "headers": {"Retry-After": {
            "description": "Seconds to wait.",
            "schema": {"type": "integer", "minimum": 1}
        }},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    responses
}

fn string_list(max_bytes: usize, description: &str) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_ITEMS,
        "description": description,
        "items": {"type": "string", "minLength": 1, "maxLength": max_bytes}
    })
}

/// Exactly one of `fields` is required.
fn one_of_required(fields: &[&str]) -> Value {
    Value::Array(fields.iter().map(|f| json!({"required": [f]})).collect())
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What was wrong, for a human."},
                "field": {
                    "type": "string",
                    "description": "The field or header at fault, with the index of a list item (`urls[3]`)."
                }
            }
        },
        "PurgeBody": {
            "type": "object",
            "description": "Our shape: exactly one kind of target.",
            "additionalProperties": false,
            "properties": {
                "urls": string_list(MAX_ITEM_BYTES, "Absolute http(s) URLs or scheme-less `host/path?query`."),
                "prefixes": string_list(MAX_ITEM_BYTES, "`host/path` or `https://host/path`: every URL whose path starts so."),
                "tags": string_list(MAX_TAG_BYTES, "Surrogate keys: no whitespace or control characters."),
                "hosts": string_list(MAX_ITEM_BYTES, "Bare host names or IP literals (`[::1]`); a port is ignored."),
                "everything": {"type": "boolean", "const": true},
                "sites": string_list(MAX_ITEM_BYTES, "With `everything` only: the sites to purge (default: all the token may purge)."),
                "soft": {"type": "boolean", "default": false, "description": "Mark stale instead of removing."}
            },
            "oneOf": one_of_required(&["urls", "prefixes", "tags", "hosts", "everything"])
        },
        "CloudflarePurgeBody": {
            "type": "object",
            "description": "Cloudflare's field names. Headers in `files` objects are ignored: every variant is purged.",
            "additionalProperties": false,
            "properties": {
                "files": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_ITEMS,
                    "items": {"oneOf": [
                        {"type": "string", "maxLength": MAX_ITEM_BYTES},
                        {
                            "type": "object",
                            "required": ["url"],
                            "additionalProperties": false,
                            "properties": {
                                "url": {"type": "string", "maxLength": MAX_ITEM_BYTES},
                                "headers": {"type": "object", "additionalProperties": {"type": "string"}}
                            }
                        }
                    ]}
                },
                "tags": string_list(MAX_TAG_BYTES, "Cache tags."),
                "hosts": string_list(MAX_ITEM_BYTES, "Host names."),
                "prefixes": string_list(MAX_ITEM_BYTES, "`host/path` prefixes."),
                "purge_everything": {"type": "boolean", "const": true},
                "soft": {"type": "boolean", "default": false}
            },
            "oneOf": one_of_required(&["files", "tags", "hosts", "prefixes", "purge_everything"])
        },
        "UrlTarget": {
            "type": "object",
            "required": ["host", "path_and_query"],
            "properties": {
                "scheme": {"type": "string", "enum": ["http", "https"]},
                "host": {"type": "string", "description": "Lower case, no trailing dot; IPv6 in brackets."},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "path_and_query": {"type": "string", "description": "Starts with `/`."}
            }
        },
        "PrefixTarget": {
            "type": "object",
            "required": ["host", "path_prefix"],
            "properties": {
                "host": {"type": "string"},
                "path_prefix": {"type": "string"}
            }
        },
        "PurgeRequest": {
            "type": "object",
            "description": "A purge request, normalised.",
            "required": ["targets", "soft"],
            "properties": {
                "soft": {"type": "boolean"},
                "targets": {"oneOf": [
                    {"type": "object", "required": ["urls"], "additionalProperties": false, "properties": {
                        "urls": {"type": "array", "items": {"$ref": "#/components/schemas/UrlTarget"}}
                    }},
                    {"type": "object", "required": ["prefixes"], "additionalProperties": false, "properties": {
                        "prefixes": {"type": "array", "items": {"$ref": "#/components/schemas/PrefixTarget"}}
                    }},
                    {"type": "object", "required": ["tags"], "additionalProperties": false, "properties": {
                        "tags": {"type": "array", "items": {"type": "string"}}
                    }},
                    {"type": "object", "required": ["hosts"], "additionalProperties": false, "properties": {
                        "hosts": {"type": "array", "items": {"type": "string"}}
                    }},
                    {"type": "object", "required": ["everything"], "additionalProperties": false, "properties": {
                        "everything": {"type": "object", "properties": {
                            "sites": {"type": "array", "items": {"type": "string"}}
                        }}
                    }}
                ]}
            }
        },
        "PurgeRecord": {
            "type": "object",
            "required": ["id", "status", "purged", "took_us", "token", "at_unix_ms", "request"],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9._~-]+$"},
                "status": {"type": "string", "enum": ["done", "failed"]},
                "purged": {"type": "integer", "format": "int64", "minimum": 0, "description": "Objects purged on this node."},
                "took_us": {"type": "integer", "format": "int64", "minimum": 0},
                "token": {"type": "string", "description": "Name of the token that asked."},
                "at_unix_ms": {"type": "integer", "format": "int64", "minimum": 0},
                "request": {"$ref": "#/components/schemas/PurgeRequest"}
            }
        }
    })
}

fn paths() -> Value {
    json!({
        "/metrics": {"get": {
            "summary": "Prometheus metrics.",
            "operationId": "getMetrics",
            "responses": responses_common(json!({
                "200": {"description": "Metrics in the Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}
            }))
        }},
        "/purge": {"post": {
            "summary": "Purge cached content.",
            "description": "Our body shape, Cloudflare's, or Fastly's: an empty body with a `Surrogate-Key` header.",
            "operationId": "purge",
            "parameters": [
                {"name": "Surrogate-Key", "in": "header", "required": false,
                 "description": "Space-separated surrogate keys to purge (Fastly); only with an empty body or `{}`. Repeated headers add keys.",
                 "schema": {"type": "string"}},
                {"name": "Fastly-Soft-Purge", "in": "header", "required": false,
                 "description": "`1`: mark stale instead of removing, for any kind of purge.",
                 "schema": {"type": "string", "enum": ["0", "1"]}}
            ],
            "requestBody": {
                "required": false,
                "description": format!("At most {MAX_BODY_BYTES} bytes and {MAX_ITEMS} items."),
                "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/PurgeBody"},
                    {"$ref": "#/components/schemas/CloudflarePurgeBody"}
                ]}}}
            },
            "responses": responses_common(json!({
                "200": {"description": "Purged.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PurgeRecord"}}}},
                "400": error_response("Malformed or invalid request."),
                "403": error_response("The token may not purge this kind or site."),
                "413": error_response("Body too large.")
            }))
        }},
        "/purge/{id}": {"get": {
            "summary": "A recent purge's record.",
            "operationId": "getPurge",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": responses_common(json!({
                "200": {"description": "The record.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PurgeRecord"}}}},
                "404": error_response("No such purge, or no longer kept.")
            }))
        }},
        "/openapi.json": {"get": {
            "summary": "This document.",
            "operationId": "getOpenApi",
            "responses": responses_common(json!({
                "200": {"description": "OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}}}
            }))
        }},
        "/healthz": {"get": {
            "summary": "Liveness: the process answers.",
            "operationId": "getHealthz",
            "security": [],
            "responses": {"200": {"description": "`ok`.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}}
        }},
        "/readyz": {"get": {
            "summary": "Readiness: config loaded, listeners bound, caches open, not draining.",
            "operationId": "getReadyz",
            "security": [],
            "responses": {
                "200": {"description": "`ready`.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "503": {"description": "Not ready; the body is the reason (`draining`, …).",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}
            }
        }},
        "/drain": {"post": {
            "summary": "Take this node out of load balancers' rotation (or put it back).",
            "description": "`/readyz` answers 503 `draining` from then on; the node keeps serving. Needs a token that may purge everything on every site. SIGTERM drains too.",
            "operationId": "drain",
            "requestBody": {
                "required": false,
                "description": "Empty: drain.",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"drain": {"type": "boolean", "default": true}}
                }}}
            },
            "responses": responses_common(json!({
                "200": {"description": "The new state.",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "required": ["draining", "previous"],
                            "properties": {
                                "draining": {"type": "boolean"},
                                "previous": {"type": "boolean"}
                            }
                        }}}},
                "400": error_response("Malformed body."),
                "403": error_response("The token may not drain the node.")
            }))
        }},
        "/status.json": {"get": {
            "summary": "The node at a glance: identity, config, readiness, request counts and a five-minute history, cache tiers, origin pools, recent purges.",
            "operationId": "getStatus",
            "responses": responses_common(json!({
                "200": {"description": "Status.",
                        "content": {"application/json": {"schema": {"type": "object"}}}}
            }))
        }},
        "/": {"get": {
            "summary": "The status page (HTML). It holds no data: it polls `/status.json` with the token given as `?token=`.",
            "operationId": "getStatusPage",
            "security": [],
            "responses": {"200": {"description": "The page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}
        }}
    })
}

/// The OpenAPI document of [`ROUTES`].
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "edge admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Purges, purge records, metrics, health and status of one edge node."
        },
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A configured token's secret; config holds its SHA-256."
            }},
            "schemas": schemas()
        }
    })
}
