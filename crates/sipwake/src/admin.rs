//! The admin web page (`GET /admin`): one self-contained HTML file
//! (`assets/admin.html`: inline CSS and JavaScript, no external resources)
//! built into the binary. The page is a shell that holds no data: it asks
//! for the management token, keeps it in the tab's `sessionStorage` only,
//! and reads everything it shows from the JSON API with
//! `Authorization: Bearer <token>`, so every datum stays behind the token
//! (and the management listener's allow/deny lists).
//!
//! Owns only the page's bytes and the headers it is served with (a strict
//! Content-Security-Policy: nothing but this page's own inline code and
//! same-origin API calls).

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub const PAGE: &str = include_str!("../assets/admin.html");

/// `GET /admin`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
                 img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
}
