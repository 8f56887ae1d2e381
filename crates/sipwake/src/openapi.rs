//! The management API's OpenAPI 3.1 document (`GET /api/v1/openapi.json`):
//! every route with its parameters, responses and schemas, in this one
//! place. The route index (`GET /api/v1`) takes its one-line summaries from
//! here; a unit test in `management` and `tests/e2e_management.rs` check
//! that the router serves exactly the operations described.
//!
//! Owns only the description: no handler, no state.

use serde_json::{Value, json};

/// `{"$ref": "#/components/schemas/NAME"}`.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON response with a schema.
fn body(description: &str, name: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema(name) } } })
}

fn error(description: &str) -> Value {
    body(description, "Error")
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, ty: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": ty } })
}

fn aor_param() -> Value {
    path_param("aor", "The AoR, `user@domain` (a `sip:` prefix is allowed; `/`, `?`, `#`, `%` percent-encoded)")
}

fn binding_param() -> Value {
    path_param("id", "The binding id (`BindingView.id`)")
}

fn user_param() -> Value {
    path_param("user", "The subscriber, `user@domain`; the domain must be one the server serves")
}

/// Responses every location route can give besides its own.
fn location_errors(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert("400".into(), error("The AoR is not `user@domain`"));
        map.insert("401".into(), error("Missing or wrong bearer token"));
        map.insert("503".into(), error("The location is still being loaded from the store"));
    }
    responses
}

fn with_auth(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert("401".into(), error("Missing or wrong bearer token"));
    }
    responses
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sipwake management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Location service views and changes, subscribers, statistics, Prometheus metrics and health of one sipwake node. When management.token is set, every route but /health needs `Authorization: Bearer <token>`."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        },
        "security": [ { "bearer": [] } ],
        "paths": paths()
    })
}

fn paths() -> Value {
    json!({
        "/admin": { "get": {
            "summary": "The admin web page (HTML; no token to load it: it holds no data and asks for the token, then reads this API)",
            "operationId": "adminPage",
            "security": [],
            "responses": {
                "200": { "description": "The page", "content": { "text/html": { "schema": { "type": "string" } } } }
            }
        }},
        "/health": { "get": {
            "summary": "Health: 200 while the store (and a cluster's change feed) works and the location is loaded",
            "operationId": "health",
            "security": [],
            "responses": {
                "200": { "description": "Healthy", "content": { "text/plain": { "schema": { "type": "string", "const": "ok\n" } } } },
                "503": { "description": "What is wrong", "content": { "text/plain": { "schema": { "type": "string" } } } }
            }
        }},
        "/metrics": { "get": {
            "summary": "Prometheus metrics (text exposition format); every family present from start-up",
            "operationId": "metrics",
            "responses": with_auth(json!({
                "200": { "description": "The metrics", "content": { "text/plain": { "schema": { "type": "string" } } } }
            }))
        }},
        "/api/v1": { "get": {
            "summary": "This index: every route with a one-line description",
            "operationId": "index",
            "responses": with_auth(json!({ "200": body("The routes", "Index") }))
        }},
        "/api/v1/openapi.json": { "get": {
            "summary": "This API's OpenAPI 3.1 document",
            "operationId": "openapi",
            "responses": with_auth(json!({
                "200": { "description": "The document", "content": { "application/json": { "schema": { "type": "object" } } } }
            }))
        }},
        "/api/v1/stats": { "get": {
            "summary": "Server statistics: version, uptime, AoRs, bindings, transactions, counters",
            "operationId": "stats",
            "responses": with_auth(json!({ "200": body("The statistics", "StatsView") }))
        }},
        "/api/v1/upstream": { "get": {
            "summary": "Mid-registrar: the upstream registrar and the registrations held there",
            "operationId": "upstream",
            "responses": location_errors(json!({
                "200": body("The upstream and its registrations", "UpstreamList"),
                "404": error("Not in mid-registrar mode")
            }))
        }},
        "/api/v1/aors": { "get": {
            "summary": "List AoRs (sorted) with every attribute of their bindings and their push state",
            "operationId": "listAors",
            "parameters": [
                query_param("offset", "AoRs to skip (default 0)", "integer"),
                query_param("limit", "Most AoRs to return (default 100, at most 10000)", "integer"),
                query_param("prefix", "Only AoRs starting with this text", "string")
            ],
            "responses": location_errors(json!({ "200": body("One page of AoRs", "AorList") }))
        }},
        "/api/v1/aors/{aor}": {
            "parameters": [ aor_param() ],
            "get": {
                "summary": "Show one AoR's bindings",
                "operationId": "showAor",
                "responses": location_errors(json!({
                    "200": body("The AoR", "AorView"),
                    "404": error("No binding for this AoR")
                }))
            },
            "delete": {
                "summary": "Delete every binding of an AoR (durable when answered)",
                "operationId": "deleteAor",
                "responses": location_errors(json!({
                    "200": body("How many bindings were removed", "Removed"),
                    "404": error("No binding for this AoR")
                }))
            }
        },
        "/api/v1/aors/{aor}/bindings/{id}": {
            "parameters": [ aor_param(), binding_param() ],
            "delete": {
                "summary": "Delete one binding (durable when answered)",
                "operationId": "deleteBinding",
                "responses": location_errors(json!({
                    "200": body("One binding removed", "Removed"),
                    "404": error("No such binding in this AoR (or no such AoR)")
                }))
            }
        },
        "/api/v1/aors/{aor}/bindings/{id}/push": {
            "parameters": [ aor_param(), binding_param() ],
            "post": {
                "summary": "Send a test push to one binding (RFC 8599 push coordinates)",
                "operationId": "testPush",
                "responses": location_errors(json!({
                    "200": body("The push service accepted the push", "PushResult"),
                    "404": error("No such binding"),
                    "409": error("Push is disabled, or the binding has no push coordinates"),
                    "502": body("The push service rejected the token or the push failed", "PushResult")
                }))
            }
        },
        "/api/v1/users": { "get": {
            "summary": "List subscribers (user@domain; never their secrets)",
            "operationId": "listUsers",
            "responses": with_auth(json!({
                "200": body("The subscribers, sorted by domain then user", "UserList"),
                "500": error("The store failed")
            }))
        }},
        "/api/v1/users/{user}": {
            "parameters": [ user_param() ],
            "put": {
                "summary": "Add a subscriber or change its password (only the digest HA1 hashes are stored)",
                "operationId": "putUser",
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema("Password") } }
                },
                "responses": with_auth(json!({
                    "200": body("Password changed", "UserSaved"),
                    "201": body("Subscriber added", "UserSaved"),
                    "400": error("Not user@domain, a domain the server does not serve, or no password"),
                    "500": error("The store failed")
                }))
            },
            "delete": {
                "summary": "Delete a subscriber",
                "operationId": "deleteUser",
                "responses": with_auth(json!({
                    "200": body("Removed", "Removed"),
                    "400": error("Not user@domain"),
                    "404": error("No such subscriber"),
                    "500": error("The store failed")
                }))
            }
        },
        "/api/v1/reload": { "post": {
            "summary": "Reload the configuration file as SIGHUP does (log level, defence, push senders, TLS files, subscribers)",
            "operationId": "reload",
            "responses": with_auth(json!({
                "200": body("What was applied, and what differs but needs a restart", "ReloadReport"),
                "400": error("The file fails a check: nothing changed"),
                "500": error("The reload failed")
            }))
        }},
        "/api/v1/push/flagged": { "get": {
            "summary": "Push devices that let pushes go unanswered: expired despite refresh pushes, refresh pushes repeated, call pushes unanswered (last 1000, newest first)",
            "operationId": "listFlagged",
            "responses": with_auth(json!({
                "200": body("The flagged devices", "FlaggedList")
            }))
        }},
        "/api/v1/push/recent": { "get": {
            "summary": "The newest pushes with reason, provider, attempt, outcome and latency (push audit)",
            "operationId": "recentPushes",
            "parameters": [ query_param("limit", "How many (default 50, at most 1000)", "integer") ],
            "responses": with_auth(json!({
                "200": body("The pushes, newest first", "RecentPushes"),
                "404": error("Push is off")
            }))
        }},
        "/api/v1/push/calls/{call_id}": { "get": {
            "summary": "The push audit of a call: parked, each push and its outcome, the wake-up REGISTER (or none), the fork or the final answer",
            "operationId": "callAudit",
            "parameters": [ path_param("call_id", "The Call-ID (percent-encode `/`, `?`, `#`, `%`)") ],
            "responses": with_auth(json!({
                "200": body("The call's events, oldest first", "AuditStory"),
                "404": error("No audit for this Call-ID (none, older than push.audit_window_secs, or push is off)")
            }))
        }},
        "/api/v1/push/bindings/{id}": { "get": {
            "summary": "The push audit of a binding: its pushes, wake-ups and forks",
            "operationId": "bindingAudit",
            "parameters": [ binding_param() ],
            "responses": with_auth(json!({
                "200": body("The binding's events, oldest first", "AuditStory"),
                "404": error("No audit for this binding (none, older than push.audit_window_secs, or push is off)")
            }))
        }},
        "/api/v1/push/parked": { "get": {
            "summary": "Requests held now while their devices are woken, oldest first",
            "operationId": "listParked",
            "responses": with_auth(json!({
                "200": body("The parked requests", "ParkedList"),
                "404": error("Push is off")
            }))
        }},
        "/api/v1/defence/blocked": {
            "get": {
                "summary": "List the sources blocked now ([defence]: rate limit, failed logins, by hand)",
                "operationId": "listBlocked",
                "responses": with_auth(json!({
                    "200": body("The blocked sources, sorted", "BlockedList")
                }))
            },
            "post": {
                "summary": "Block a source by hand (an IPv6 source is blocked by its /64)",
                "operationId": "blockSource",
                "requestBody": {
                    "required": true,
                    "content": { "application/json": { "schema": schema("BlockRequest") } }
                },
                "responses": with_auth(json!({
                    "200": body("Blocked", "Blocked"),
                    "400": error("Not an IP address, or secs out of 1..=2592000")
                }))
            }
        },
        "/api/v1/defence/blocked/{source}": {
            "parameters": [ path_param("source", "The source as listed: an IPv4 address, or an IPv6 /64 (`2001:db8::/64`)") ],
            "delete": {
                "summary": "Lift the block of a source",
                "operationId": "unblockSource",
                "responses": with_auth(json!({
                    "200": body("Unblocked", "Unblocked"),
                    "400": error("Not an IP address"),
                    "404": error("The source is not blocked")
                }))
            }
        }
    })
}

fn nullable(ty: &str) -> Value {
    json!({ "type": [ty, "null"] })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "string", "description": "What went wrong, one line" } }
        },
        "Index": {
            "type": "object", "required": ["routes", "openapi"],
            "properties": {
                "openapi": { "type": "string", "description": "Where the OpenAPI document is" },
                "routes": { "type": "array", "items": {
                    "type": "object", "required": ["method", "path", "summary"],
                    "properties": {
                        "method": { "type": "string" },
                        "path": { "type": "string" },
                        "summary": { "type": "string" }
                    }
                }}
            }
        },
        "FlowView": {
            "type": "object",
            "properties": {
                "transport": { "type": "string" },
                "remote": { "type": "string" },
                "local": { "type": "string" },
                "connection": { "type": ["integer", "null"], "description": "The connection id while the connection the device registered on is open" },
                "alive": { "type": "boolean", "description": "Whether a request can reuse the flow now" }
            }
        },
        "PushView": {
            "type": "object", "description": "The RFC 8599 push coordinates of the Contact",
            "properties": { "provider": { "type": "string" }, "prid": nullable("string"), "param": nullable("string") }
        },
        "PushState": {
            "type": "object",
            "description": "The push engine's view of a binding (present only when push is enabled and the engine follows it); times in ms relative to the request",
            "properties": {
                "binding": { "type": "string" },
                "provider": { "type": "string" },
                "pnsreg": { "type": "boolean" },
                "expires_in_ms": { "type": "integer" },
                "registered_ago_ms": nullable("integer"),
                "next_refresh_in_ms": { "type": ["integer", "null"], "description": "When the next refresh push goes (null: none before expiry)" },
                "refresh_attempts": { "type": "integer" },
                "last_push_ago_ms": nullable("integer"),
                "consecutive_failures": { "type": "integer", "description": "Push failures since the last successful push" },
                "invalid": { "type": "boolean", "description": "The push service rejected the token: no pushes until it re-registers" },
                "parked": { "type": "integer", "description": "Requests parked on it" },
                "purrs": { "type": "integer" },
                "purr_age_ms": { "type": ["integer", "null"], "description": "How long ago its current PURR was issued" }
            }
        },
        "UpstreamView": {
            "type": "object",
            "properties": {
                "key": { "type": "string" },
                "aor": { "type": "string" },
                "upstream_contact": { "type": "string" },
                "expires_in": { "type": "integer" },
                "expires_at_ms": { "type": "integer" },
                "last_code": { "type": "integer" },
                "last_at_ms": { "type": "integer" },
                "bindings": { "type": "array", "items": { "type": "string" } }
            }
        },
        "UpstreamInfo": {
            "type": "object",
            "properties": {
                "address": { "type": "string" },
                "transport": { "type": "string" },
                "throttle": { "type": "string" },
                "up": { "type": "boolean" },
                "in_flight": { "type": "integer" }
            }
        },
        "UpstreamList": {
            "type": "object",
            "properties": {
                "upstream": schema("UpstreamInfo"),
                "registrations": { "type": "array", "items": schema("UpstreamView") }
            }
        },
        "BindingView": {
            "type": "object",
            "properties": {
                "id": { "type": "string" },
                "aor": { "type": "string" },
                "contact": { "type": "string" },
                "q": nullable("string"),
                "expires_in_secs": { "type": "integer" },
                "expires_at_ms": { "type": "integer" },
                "call_id": { "type": "string" },
                "cseq": { "type": "integer" },
                "instance": nullable("string"),
                "reg_id": nullable("integer"),
                "path": { "type": "array", "items": { "type": "string" } },
                "flow": schema("FlowView"),
                "user_agent": nullable("string"),
                "registered_at_ms": { "type": "integer" },
                "push_capable": { "type": "boolean" },
                "push": { "oneOf": [ schema("PushView"), { "type": "null" } ] },
                "push_state": { "oneOf": [ schema("PushState"), { "type": "null" } ] },
                "upstream": { "oneOf": [ schema("UpstreamView"), { "type": "null" } ] },
                "last_push": { "oneOf": [ schema("AuditEvent"), { "type": "null" } ], "description": "Its newest push in the push audit" }
            }
        },
        "AorView": {
            "type": "object",
            "properties": { "aor": { "type": "string" }, "bindings": { "type": "array", "items": schema("BindingView") } }
        },
        "AorList": {
            "type": "object",
            "properties": {
                "total": { "type": "integer", "description": "AoRs matching (all pages)" },
                "offset": { "type": "integer" },
                "aors": { "type": "array", "items": schema("AorView") }
            }
        },
        "Removed": {
            "type": "object", "properties": { "removed": { "type": "integer" } }
        },
        "PushResult": {
            "type": "object",
            "properties": { "result": { "type": "string", "enum": ["ok", "rejected", "failed"] } }
        },
        "StatsView": {
            "type": "object",
            "properties": {
                "version": { "type": "string" },
                "uptime_secs": { "type": "integer" },
                "loading": { "type": "boolean" },
                "aors": { "type": "integer" },
                "bindings": { "type": "integer" },
                "push_bindings": { "type": "integer" },
                "transactions": { "type": "integer" },
                "proxy_contexts": { "type": "integer" },
                "branches_started": { "type": "integer" },
                "tcp_connections": { "type": "integer" },
                "requests": { "type": "integer" },
                "parse_errors": { "type": "integer" },
                "responses_2xx": { "type": "integer" },
                "responses_4xx": { "type": "integer" },
                "responses_5xx": { "type": "integer" },
                "store_commits": { "type": "integer" },
                "store_batches": { "type": "integer" },
                "store_failed_commits": { "type": "integer" },
                "parked_requests": { "type": "integer", "description": "Requests held now while their devices are woken" },
                "pushes_sent": { "type": "integer", "description": "Refresh and wake-up pushes sent since start" },
                "pushes_failed": { "type": "integer", "description": "Of those, failed or rejected by the push service" },
                "flagged_devices": { "type": "integer", "description": "Devices flagged for unanswered pushes (kept now)" }
            }
        },
        "User": {
            "type": "object",
            "properties": {
                "user": { "type": "string", "description": "user@domain" },
                "created_at_ms": { "type": "integer" }
            }
        },
        "UserList": {
            "type": "object",
            "properties": { "users": { "type": "array", "items": schema("User") } }
        },
        "Password": {
            "type": "object", "required": ["password"],
            "properties": { "password": { "type": "string", "minLength": 1 } }
        },
        "FlaggedList": {
            "type": "object",
            "properties": { "flagged": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "aor": { "type": "string" },
                    "binding": { "type": "string" },
                    "provider": { "type": "string" },
                    "reason": { "type": "string", "enum": ["expired", "refresh-unanswered", "call-unanswered"],
                        "description": "expired: its registration expired although refresh pushes were sent; refresh-unanswered: refresh pushes repeated while registered; call-unanswered: a delivered call push got no REGISTER before the hold ended" },
                    "refresh_pushes": { "type": "integer", "description": "Refresh pushes sent in its current (or last) registration cycle" },
                    "times": { "type": "integer", "description": "Times flagged for this reason" },
                    "at_ms": { "type": "integer", "description": "When it was last flagged (unix ms)" }
                }
            } } }
        },
        "AuditEvent": {
            "type": "object",
            "description": "One event of the push audit. Per `event`: parked (method, request, bindings), push (id, provider, reason, method, attempt, outcome, latency_ms), woken (after_push_ms: the wake-up REGISTER), not-woken (request: no REGISTER before the hold ended), forked (request, wake_latency_ms), answered (request, code, outcome)",
            "required": ["at_ms", "event"],
            "properties": {
                "at_ms": { "type": "integer", "description": "unix ms" },
                "event": { "type": "string", "enum": ["parked", "push", "woken", "not-woken", "forked", "answered"] },
                "call_id": nullable("string"),
                "binding": nullable("string"),
                "aor": nullable("string"),
                "method": { "type": ["string", "null"] },
                "request": { "type": "integer", "description": "The parked request's id" },
                "bindings": { "type": "integer", "description": "parked: push bindings it waits for" },
                "id": { "type": "integer", "description": "push: the push id" },
                "provider": { "type": "string" },
                "reason": { "type": "string", "enum": ["call", "mid-dialog", "refresh", "test", "cancel", "missed-call"] },
                "attempt": { "type": "integer" },
                "outcome": { "type": "string", "description": "push: pending, ok, rejected, failed; answered: answered, timed-out-480, cancelled" },
                "latency_ms": { "type": ["integer", "null"], "description": "push: sent → the push service's answer" },
                "after_push_ms": { "type": "integer" },
                "wake_latency_ms": { "type": ["integer", "null"] },
                "code": { "type": "integer" }
            }
        },
        "AuditStory": {
            "type": "object",
            "properties": {
                "call_id": { "type": "string" },
                "binding": { "type": "string" },
                "events": { "type": "array", "items": schema("AuditEvent"), "description": "Oldest first" }
            }
        },
        "RecentPushes": {
            "type": "object",
            "properties": { "pushes": { "type": "array", "items": schema("AuditEvent"), "description": "Newest first" } }
        },
        "ParkedList": {
            "type": "object",
            "properties": { "parked": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "request": { "type": "integer" },
                    "call_id": { "type": "string" },
                    "method": { "type": "string" },
                    "kind": { "type": "string", "enum": ["initial", "mid-dialog"] },
                    "age_ms": { "type": "integer" },
                    "waiting": { "type": "array", "items": { "type": "string" }, "description": "Bindings not woken yet" },
                    "woken": { "type": "integer" },
                    "caller": nullable("string")
                }
            } } }
        },
        "ReloadReport": {
            "type": "object",
            "properties": {
                "config": { "type": "string", "description": "The file read, or `embedded default`" },
                "applied": { "type": "array", "items": { "type": "string" } },
                "restart_required": { "type": "array", "items": { "type": "string" } }
            }
        },
        "BlockedList": {
            "type": "object",
            "properties": { "blocked": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "source": { "type": "string", "description": "IPv4 address, or IPv6 /64" },
                    "reason": { "type": "string", "enum": ["rate-limit", "auth-failures", "manual"] },
                    "remaining_secs": { "type": "integer" }
                }
            } } }
        },
        "BlockRequest": {
            "type": "object", "required": ["source", "secs"],
            "properties": {
                "source": { "type": "string", "description": "An IP address" },
                "secs": { "type": "integer", "minimum": 1, "maximum": 2592000 }
            }
        },
        "Blocked": {
            "type": "object",
            "properties": { "blocked": { "type": "string" }, "secs": { "type": "integer" } }
        },
        "Unblocked": {
            "type": "object",
            "properties": { "unblocked": { "type": "string" } }
        },
        "UserSaved": {
            "type": "object",
            "properties": { "user": { "type": "string" }, "created": { "type": "boolean", "description": "true: added; false: password changed" } }
        }
    })
}

/// Every operation described, as (METHOD, path), e.g. ("GET", "/api/v1/aors").
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                if item.get(m).is_some() {
                    out.push((m.to_ascii_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The one-line summary of an operation.
pub fn summary<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a str> {
    doc["paths"][path][method.to_ascii_lowercase()]["summary"].as_str()
}
