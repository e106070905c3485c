//! A request's future is allocated once per request, moved into its box, and held for the whole
//! upstream wait: what it weighs is paid by every request (a copy) and every waiting request
//! (memory). Large sub-futures that only some requests reach (the shared limits store, sessions)
//! are boxed where they are awaited; this keeps them from creeping back inline.

use bytes::Bytes;

use super::*;
use crate::state::App;

/// Far above the ~2.8 KB measured, far below the ~11.5 KB of an inline limits store.
const MAX_FUTURE: usize = 4096;

#[tokio::test]
async fn the_chat_and_embeddings_futures_stay_small() {
    let yaml = r#"
providers:
  - { id: up, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-up }
models:
  - { name: m, routes: [ { provider: up, model: m } ] }
  - { name: e, type: embedding, routes: [ { provider: up, model: e } ] }
usage: { sink: none }
"#;
    let (config, _) = crate::config::parse(yaml, &|_: &str| None).expect("config");
    let ctx = RequestCtx::internal(App::new(&config).expect("app"));
    let request = ChatRequest::parse(Bytes::from_static(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    ))
    .expect("chat");
    let chat_future = chat(&ctx, None, request, Some("s".into()));
    assert!(
        size_of_val(&chat_future) < MAX_FUTURE,
        "chat future: {} bytes",
        size_of_val(&chat_future)
    );
    let req = EmbeddingsRequest::parse(Bytes::from_static(br#"{"model":"e","input":"hi"}"#))
        .expect("embeddings");
    let embeddings_future = embeddings(&ctx, None, &req);
    assert!(
        size_of_val(&embeddings_future) < MAX_FUTURE,
        "embeddings future: {} bytes",
        size_of_val(&embeddings_future)
    );
}
