//! `GET /dashboard`: one HTML page and its assets, compiled into the binary (uPlot vendored with
//! its licence; no CDN, nothing for a user to build). The page reads `GET /admin/v1/stats`. A
//! strict Content-Security-Policy: scripts and styles from this origin only, no framing.

use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{Body, full};
use crate::error::{ErrorKind, GatewayError};

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/dashboard",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/dashboard/index.html"),
    ),
    (
        "/dashboard/",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/dashboard/index.html"),
    ),
    (
        "/dashboard/dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "/dashboard/dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "/dashboard/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/uPlot.iife.min.js"),
    ),
    (
        "/dashboard/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/uPlot.min.css"),
    ),
    (
        "/dashboard/LICENSE-uPlot",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/LICENSE-uPlot"),
    ),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn asset(path: &str) -> Response<Body> {
    let Some((_, kind, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return GatewayError::new(ErrorKind::NotFound, format!("no dashboard asset {path}"))
            .to_response();
    };
    let mut response = Response::new(full(*bytes));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // The assets change only with the binary; a short cache keeps an upgrade visible.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
