//! Embeddings (every input shape, float and base64) and the models endpoints.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Gateway, client, config_for, post};
use crate::mock_openai::MockOpenAi;

#[tokio::test]
async fn embeddings_pass_every_input_shape_and_encoding() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], "")).await;
    let inputs = [
        json!("hello"),
        json!(["a", "b", "c"]),
        json!([1, 2, 3]),
        json!([[1, 2], [3]]),
    ];
    for input in inputs {
        for format in [None, Some("float"), Some("base64")] {
            let mut request =
                json!({"model": "text-embedding-3-small", "input": input, "dimensions": 3});
            if let Some(f) = format {
                request["encoding_format"] = json!(f);
            }
            let r = post(&gw, "/v1/embeddings", &request).await;
            assert_eq!(r.status(), 200, "{request}");
            let body: Value = r.json().await.unwrap();
            let seen = a.requests().last().unwrap().body.clone();
            let mut expected = request.clone();
            expected["model"] = json!("embed-a");
            assert_eq!(seen, expected, "forwarded untouched but for model");
            let first = &body["data"][0]["embedding"];
            match format {
                Some("base64") => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(first.as_str().unwrap())
                        .unwrap();
                    assert_eq!(bytes.len(), 12, "3 float32 little-endian values");
                    assert_eq!(f32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1.0);
                }
                _ => assert_eq!(first.as_array().unwrap().len(), 3),
            }
            assert_eq!(body["usage"]["prompt_tokens"], 8);
        }
    }
}

#[tokio::test]
async fn models_list_and_get_come_from_the_config() {
    let gw = Gateway::start(&crate::harness::embedded_default()).await;
    let list: Value = client()
        .get(gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let demo = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "demo")
        .unwrap()
        .clone();
    for field in [
        "id",
        "object",
        "created",
        "owned_by",
        "providers",
        "context_window",
        "input_price",
        "output_price",
    ] {
        assert!(demo.get(field).is_some(), "model lacks {field}: {demo}");
    }
    assert_eq!(demo["object"], "model");
    assert!(demo["created"].as_u64().unwrap() > 1_600_000_000);
    let one: Value = client()
        .get(gw.url("/v1/models/demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, demo);
    let missing = client()
        .get(gw.url("/v1/models/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}
