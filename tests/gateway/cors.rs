//! CORS for browser apps: the preflight a browser sends before an SDK's POST, and the headers
//! an answer needs so the page can read it.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Gateway, client, embedded_default};

const APP: &str = "https://app.example.com";

fn with_cors(origins: &str) -> String {
    embedded_default().replacen(
        "server:\n",
        &format!("server:\n  cors: {{ allowed_origins: [{origins}] }}\n"),
        1,
    )
}

async fn preflight(gw: &Gateway, origin: &str, headers: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_origin_passes_the_preflight_and_reads_the_answer() {
    let gw = Gateway::start(&with_cors(&format!("\"{APP}\""))).await;
    // What the openai package sends from a browser (dangerouslyAllowBrowser).
    let sdk_headers = "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,\
                       x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,\
                       x-stainless-runtime-version,x-stainless-timeout";
    let r = preflight(&gw, APP, sdk_headers).await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in sdk_headers.split(',').chain(["x-session-id"]) {
        assert!(
            allowed.split(", ").any(|a| a == name),
            "{name} in {allowed}"
        );
    }
    assert!(
        h["access-control-max-age"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 0
    );

    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", APP)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in [
        "x-request-id",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
    ] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
    // Errors too: a page must be able to read why it failed.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", APP)
        .json(&json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
}

#[tokio::test]
async fn other_origins_and_unknown_headers_are_refused() {
    let gw = Gateway::start(&with_cors(&format!("\"{APP}\""))).await;
    let r = preflight(&gw, "https://evil.example.com", "authorization").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cors_forbidden");
    let r = preflight(&gw, APP, "authorization,x-evil").await;
    assert_eq!(r.status(), 403);
    // The answer to another origin carries no CORS header: the browser keeps it from the page.
    let r = client()
        .get(gw.url("/v1/models"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // "*" allows any origin; no `cors` section means no CORS at all.
    let any = Gateway::start(&with_cors("\"*\"")).await;
    assert_eq!(
        preflight(&any, "https://x.example", "authorization")
            .await
            .status(),
        204
    );
    let none = Gateway::start(&embedded_default()).await;
    assert_eq!(preflight(&none, APP, "authorization").await.status(), 403);
    let r = client()
        .get(none.url("/v1/models"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// An admin tool on an allowed origin: its preflight passes (PATCH and DELETE included), and the
/// request itself still needs an admin key.
#[tokio::test]
async fn an_admin_tool_on_an_allowed_origin_passes_the_preflight_not_the_key_check() {
    let gw = Gateway::start(&with_cors(&format!("\"{APP}\""))).await;
    for method in ["PATCH", "DELETE"] {
        let r = client()
            .request(Method::OPTIONS, gw.url("/admin/v1/keys/team"))
            .header("origin", APP)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{method}");
        let methods = r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(methods.split(", ").any(|m| m == method), "{methods}");
    }
    let r = client()
        .request(Method::OPTIONS, gw.url("/admin/v1/keys"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "another origin is refused");
    let r = client()
        .get(gw.url("/admin/v1/keys"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no admin key");
    assert_eq!(r.headers()["access-control-allow-origin"], APP);
}
