//! `/v1/responses` end to end: the real gateway in front of the mock upstreams (OpenAI-kind and
//! DashScope native), stored responses in memory and in the real Redis.

use serde_json::{Value, json};

use crate::harness::{Gateway, client, config_for, post};
use crate::mock_dashscope::MockDashScope;
use crate::mock_openai::{Behavior, MockOpenAi};

/// A gateway with one OpenAI-kind route (`a`) and `extra` config.
async fn gateway(extra: &str) -> (MockOpenAi, Gateway) {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], extra)).await;
    (a, gw)
}

async fn create(gw: &Gateway, body: Value) -> (u16, Value) {
    let r = post(gw, "/v1/responses", &body).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get(gw: &Gateway, path: &str) -> (u16, Value) {
    let r = client().get(gw.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The status of a GET or DELETE of a stored response, as the holder of `key`.
async fn status_as(gw: &Gateway, method: reqwest::Method, id: &str, key: &str) -> u16 {
    let url = gw.url(&format!("/v1/responses/{id}"));
    let r = client().request(method, url).bearer_auth(key).send().await;
    r.unwrap().status().as_u16()
}

/// The events of a streamed response, in order.
async fn stream(gw: &Gateway, body: Value) -> Vec<Value> {
    let r = post(gw, "/v1/responses", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("[DONE]"),
        "Responses streams end without [DONE]"
    );
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_text_response_is_translated_stored_and_retrievable() {
    let (a, gw) = gateway("").await;
    let (status, response) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "Hi", "instructions": "Be brief.", "metadata": {"k": "v"}}),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let id = response["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"));
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "gpt-4o-mini");
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello from a");
    assert_eq!(response["usage"]["input_tokens"], 19);
    assert_eq!(response["usage"]["output_tokens"], 10);
    assert_eq!(response["metadata"], json!({"k": "v"}));
    // What the upstream saw: a chat request, instructions first, nothing Responses-only.
    let sent = &a.requests()[0];
    assert!(sent.path.ends_with("/chat/completions"));
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    );
    assert_eq!(sent.body["model"], "upstream-a");
    assert!(sent.body.get("metadata").is_none() && sent.body.get("store").is_none());

    let (status, stored) = get(&gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored, response);
    let (status, items) = get(&gw, &format!("/v1/responses/{id}/input_items")).await;
    assert_eq!(status, 200);
    assert_eq!(items["object"], "list");
    assert_eq!(
        items["data"][0]["content"],
        json!([{"type": "input_text", "text": "Hi"}]),
        "listed as parts, as OpenAI lists them"
    );
    assert!(items["data"][0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(items["first_id"], items["data"][0]["id"]);
    assert_eq!(items["has_more"], false);

    let r = client()
        .delete(gw.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deleted: Value = r.json().await.unwrap();
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response", "deleted": true})
    );
    let (status, error) = get(&gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_streamed_response_emits_every_event_in_order_and_is_stored_before_it_ends() {
    let (_a, gw) = gateway("").await;
    let events = stream(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "Hi", "stream": true}),
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    let done = &events[11]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello from a");
    assert_eq!(
        done["usage"]["input_tokens"], 44,
        "the upstream's usage chunk"
    );
    let id = done["id"].as_str().unwrap();
    // Stored before the stream ended: retrievable at once.
    let (status, stored) = get(&gw, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["output"], done["output"]);
}

#[tokio::test]
async fn a_tool_round_trip_works_stored_and_replayed_in_full() {
    let (a, gw) = gateway("").await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather.",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let (status, first) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "Weather in Paris?", "tools": tools}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let call = &first["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call_abc123");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(first["tools"][0]["name"], "get_weather");
    let sent = &a.requests()[0].body;
    assert_eq!(
        sent["tools"][0]["function"]["name"], "get_weather",
        "nested for chat"
    );

    // Stored: continue with previous_response_id and only the tool's output.
    let (status, second) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "previous_response_id": first["id"],
               "input": [{"type": "function_call_output", "call_id": "call_abc123", "output": "22C"}]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let sent = &a.requests()[1].body;
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc123", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc123", "content": "22C"},
        ])
    );
    assert_eq!(second["previous_response_id"], first["id"]);

    // Replayed in full by the client (the Agents SDK's way), no previous_response_id.
    let (status, replayed) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "input": [
            {"role": "user", "content": "Weather in Paris?"},
            call.clone(),
            {"type": "function_call_output", "call_id": "call_abc123", "output": "22C"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(a.requests()[2].body["messages"], sent["messages"]);

    // An item reference to the stored call works too (the AI SDK's way).
    let (status, _) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "item_reference", "id": call["id"]},
            {"type": "function_call_output", "call_id": "call_abc123", "output": "22C"},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(a.requests()[3].body["messages"], sent["messages"]);
}

#[tokio::test]
async fn a_streamed_tool_call_has_its_arguments_delta_under_its_item() {
    let (_a, gw) = gateway("").await;
    let events = stream(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "Weather?", "stream": true,
               "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}),
    )
    .await;
    let added = events
        .iter()
        .find(|e| e["type"] == "response.output_item.added")
        .unwrap();
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["arguments"], "");
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .collect();
    assert_eq!(deltas.len(), 5);
    assert!(
        deltas
            .iter()
            .all(|d| d["item_id"] == added["item"]["id"] && d["output_index"] == 0)
    );
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"], "{\"city\":\"Paris\"}");
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(
        completed["response"]["output"][0]["arguments"],
        "{\"city\":\"Paris\"}"
    );
}

#[tokio::test]
async fn json_schema_formats_reach_the_upstream_as_response_format() {
    let (a, gw) = gateway("").await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let (status, response) = create(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "json", "text": {"format": {"type": "json_schema",
               "name": "city", "schema": schema, "strict": true}}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        a.requests()[0].body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}})
    );
    assert_eq!(response["text"]["format"]["type"], "json_schema", "echoed");
}

#[tokio::test]
async fn store_false_unknown_and_other_keys_ids_get_the_documented_errors() {
    let (_a, gw) = gateway(
        "auth:\n  keys:\n    - { name: alice, key: sk-alice-123456 }\n    - { name: bob, key: sk-bob-1234567 }\n",
    )
    .await;
    let as_key = |key: &'static str, body: Value| {
        let url = gw.url("/v1/responses");
        async move {
            let r = client()
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, unstored) = as_key(
        "sk-alice-123456",
        json!({"model": "gpt-4o-mini", "input": "x", "store": false}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(unstored["store"], false);
    let id = unstored["id"].as_str().unwrap();
    assert_eq!(
        status_as(&gw, reqwest::Method::GET, id, "sk-alice-123456").await,
        404,
        "store:false is never retrievable"
    );
    let (status, error) = as_key(
        "sk-alice-123456",
        json!({"model": "gpt-4o-mini", "input": "y", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "previous_response_not_found");
    assert_eq!(error["error"]["param"], "previous_response_id");
    assert_eq!(
        error["error"]["message"],
        format!("Previous response with id '{id}' not found.")
    );

    let (_, stored) = as_key(
        "sk-alice-123456",
        json!({"model": "gpt-4o-mini", "input": "x"}),
    )
    .await;
    let id = stored["id"].as_str().unwrap();
    // Bob cannot see, continue, reference or delete Alice's response.
    assert_eq!(
        status_as(&gw, reqwest::Method::GET, id, "sk-bob-1234567").await,
        404
    );
    let (status, _) = as_key(
        "sk-bob-1234567",
        json!({"model": "gpt-4o-mini", "input": "y", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400);
    let message_id = stored["output"][0]["id"].clone();
    let (status, error) = as_key(
        "sk-bob-1234567",
        json!({"model": "gpt-4o-mini", "input": [{"type": "item_reference", "id": message_id}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["param"], "input");
    assert_eq!(
        status_as(&gw, reqwest::Method::DELETE, id, "sk-bob-1234567").await,
        404
    );
    assert_eq!(
        status_as(&gw, reqwest::Method::GET, id, "sk-alice-123456").await,
        200,
        "still there for its owner"
    );

    let (status, error) = as_key(
        "sk-alice-123456",
        json!({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "tools[0].type");
    let r = client()
        .get(gw.url("/v1/responses/resp_nope"))
        .bearer_auth("sk-alice-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_failure_after_the_commit_point_ends_with_error_and_response_failed() {
    let (a, gw) = gateway("").await;
    a.next(1, Behavior::ErrorEventAfter(2));
    let events = stream(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "Hi", "stream": true}),
    )
    .await;
    let n = events.len();
    assert_eq!(events[n - 2]["type"], "error", "{events:#?}");
    assert_eq!(events[n - 1]["type"], "response.failed");
    assert_eq!(events[n - 1]["response"]["status"], "failed");
    // Before the commit point a failure falls back or is an HTTP error (here: no other route).
    a.next(1, Behavior::Status(500, vec![]));
    let (status, error) = create(&gw, json!({"model": "gpt-4o-mini", "input": "Hi"})).await;
    assert_eq!(status, 502);
    assert!(error["error"]["message"].is_string());
}

#[tokio::test]
async fn a_dashscope_route_answers_responses_streamed_and_not() {
    let ds = MockDashScope::start("qwen").await;
    let yaml = format!(
        "providers:\n  - {{ id: qwen, kind: dashscope, base_url: \"{}\", api_key: sk-ds-123456789, timeout: 2s, health_check: {{ enabled: false }} }}\n\
         models:\n  - {{ name: qwen-plus, routes: [ {{ provider: qwen, model: qwen-plus }} ] }}\n",
        ds.base_url()
    );
    let gw = Gateway::start(&yaml).await;
    let (status, response) = create(
        &gw,
        json!({"model": "qwen-plus", "input": "Hi", "instructions": "Be kind."}),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["output"][0]["type"], "message");
    assert!(
        response["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = &ds.requests()[0];
    assert!(
        sent.path
            .ends_with("/services/aigc/text-generation/generation"),
        "native API"
    );
    assert_eq!(sent.body["input"]["messages"][0]["role"], "system");

    let events = stream(
        &gw,
        json!({"model": "qwen-plus", "input": "Hi", "stream": true}),
    )
    .await;
    assert_eq!(events[0]["type"], "response.created");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert!(last["response"]["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_long_chain_is_compressed_and_never_outgrows_max_tokens() {
    // A low threshold: every response past the first few is compressed in the background.
    let (a, gw) = gateway(
        "sessions:\n  max_tokens: 400\n  compression_threshold: 200\n  keep_recent: 2\n  summary_model: gpt-4o-mini\n",
    )
    .await;
    let filler = "lorem ipsum dolor sit amet ".repeat(12); // ~70 tokens a turn
    let mut previous = Value::Null;
    for turn in 0..12 {
        let mut body = json!({"model": "gpt-4o-mini", "input": format!("turn {turn}: {filler}")});
        if !previous.is_null() {
            body["previous_response_id"] = previous.clone();
        }
        let (status, response) = create(&gw, body).await;
        assert_eq!(status, 200, "{response}");
        previous = response["id"].clone();
    }
    let sent: Vec<Value> = a
        .requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| {
            !b["messages"]
                .to_string()
                .contains("You compress conversations")
        })
        .collect();
    assert_eq!(sent.len(), 12);
    let summaries = a.requests().len() - sent.len();
    assert!(summaries >= 1, "older turns were summarised");
    for body in &sent {
        let text = body["messages"].to_string();
        assert!(
            text.len() < 3_000,
            "a turn carries at most ~max_tokens: {} bytes",
            text.len()
        );
    }
    let last = sent.last().unwrap()["messages"].as_array().unwrap().clone();
    assert!(
        last.iter().any(|m| m["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("Summary of the earlier conversation"))),
        "the summary stands in for the older turns: {last:#?}"
    );
    assert!(
        last.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .starts_with("turn 11:")
    );
}

#[tokio::test]
async fn two_gateways_share_stored_responses_through_redis() {
    let a = MockOpenAi::start("a").await;
    let extra = "responses:\n  store: redis\n  redis_url: redis://127.0.0.1:6379\n  ttl: 60s\n";
    let yaml = config_for(&[("a", &a.base_url(), 1, 1)], extra);
    let (one, two) = (Gateway::start(&yaml).await, Gateway::start(&yaml).await);
    let (status, first) = create(
        &one,
        json!({"model": "gpt-4o-mini", "input": "Hi from one"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap();
    let (status, seen) = get(&two, &format!("/v1/responses/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(seen, first);
    let (status, _) = create(
        &two,
        json!({"model": "gpt-4o-mini", "input": "and two", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200);
    let messages = &a.requests()[1].body["messages"];
    assert_eq!(
        messages[0]["content"], "Hi from one",
        "the chain from the other replica"
    );
    assert_eq!(messages[1]["content"], "Hello from a");
    let r = client()
        .delete(two.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&one, &format!("/v1/responses/{id}")).await.0, 404);
}

#[tokio::test]
async fn each_upstream_chunk_reaches_the_client_as_its_events_at_once() {
    let (a, gw) = gateway("").await;
    // The role chunk, "Hello", " from", then silence until the provider's timeout (1s).
    a.next(1, Behavior::StallAfter(3));
    let started = std::time::Instant::now();
    let mut r = post(
        &gw,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "Hi", "stream": true}),
    )
    .await;
    let mut seen = String::new();
    while seen.matches("response.output_text.delta").count() < 4 {
        let chunk = tokio::time::timeout(std::time::Duration::from_millis(700), r.chunk())
            .await
            .expect("the events of the chunks already sent arrive while the upstream is silent")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(700));
    assert!(seen.contains("\"delta\":\"Hello\"") && seen.contains("\"delta\":\" from\""));
    assert!(!seen.contains("response.completed"));
    // The silence ends the stream after the commit point: error, then response.failed.
    let rest = r.text().await.unwrap();
    assert!(
        rest.contains("event: error") && rest.contains("event: response.failed"),
        "{rest}"
    );
}

/// SDKs stop reading a Responses stream at `response.completed` and close (openai-python's
/// `responses.stream`, the Agents SDK, the AI SDK); a chat client may stop at `[DONE]`. Each such
/// stream is a completed request in the ledger, not a client that left.
#[tokio::test]
async fn streams_read_to_their_last_event_are_recorded_as_completed() {
    const TRIES: usize = 25;
    let ledger =
        std::env::temp_dir().join(format!("{}.jsonl", crate::harness::unique("responses-end")));
    let (_a, gw) = gateway(&format!(
        "usage:\n  sink: file\n  path: {}\n",
        ledger.display()
    ))
    .await;
    for (path, body, last) in [
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
            "response.completed",
        ),
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "hi", "stream": true, "store": false}),
            "response.completed",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]}),
            "[DONE]",
        ),
    ] {
        // Whether the close or the relay's last poll comes first is a race: run it often.
        for _ in 0..TRIES {
            let mut r = post(&gw, path, &body).await;
            assert_eq!(r.status(), 200);
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains(last) {
                let chunk = r.chunk().await.unwrap().expect("the last event arrives");
                seen.extend_from_slice(&chunk);
            }
            // Closed at the last event, without reading the end of the body.
            drop(r);
        }
    }
    gw.shutdown().await;
    let rows = crate::harness::ledger_rows(&ledger);
    assert_eq!(rows.len(), 3 * TRIES, "{rows:?}");
    for row in &rows {
        assert_eq!(
            (row["status"].as_str(), row["http_status"].as_u64()),
            (Some("ok"), Some(200)),
            "{row}"
        );
        assert!(row["output_tokens"].as_u64() > Some(0), "{row}");
    }
}

/// The Responses usage carries the upstream's cached and reasoning tokens, streamed or not.
#[tokio::test]
async fn responses_usage_reports_cached_and_reasoning_tokens() {
    let (a, gw) = gateway("").await;
    a.next(2, Behavior::CacheHit);
    let (status, object) = create(&gw, json!({"model": "gpt-4o-mini", "input": "hi"})).await;
    assert_eq!(status, 200, "{object}");
    let events = stream(
        &gw,
        json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}),
    )
    .await;
    let completed = events
        .iter()
        .find(|e| e["type"] == "response.completed")
        .expect("response.completed");
    for usage in [&object["usage"], &completed["response"]["usage"]] {
        assert_eq!(
            usage,
            &json!({"input_tokens": 2006, "input_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
                    "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 128}, "total_tokens": 2306})
        );
    }
}
