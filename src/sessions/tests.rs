//! Turns, budgets and compression against the memory store.

use super::compaction::tool_safe_split;
use super::*;
use crate::config::SessionsConfig;
use serde_json::json;

fn sessions(threshold: u32, max_tokens: u32, keep_recent: u32) -> Sessions {
    Sessions::new(
        &SessionsConfig {
            compression_threshold: threshold,
            max_tokens,
            keep_recent,
            summary_model: Some("summarizer".into()),
            ..SessionsConfig::default()
        },
        None,
    )
    .unwrap()
}

const E: Encoding = Encoding::O200kBase;

async fn no_compression() {}

async fn turn(s: &Sessions, body: Value) -> Turn {
    s.begin("s1", Some("team"), body.to_string().as_bytes(), E, || {
        no_compression()
    })
    .await
    .unwrap()
}

fn reply(text: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(&json!({"role": "assistant", "content": text})).unwrap()
}

fn sent(t: &Turn) -> Value {
    serde_json::from_slice(&t.body).unwrap()
}

#[tokio::test]
async fn a_turn_carries_system_summary_history_then_new_messages() {
    let s = sessions(10_000, 20_000, 4);
    let first = turn(
        &s,
        json!({"model": "m", "session_id": "s1", "temperature": 0.5, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]}),
    )
    .await;
    let body = sent(&first);
    assert!(
        body.get("session_id").is_none(),
        "stripped before forwarding"
    );
    assert_eq!(
        (body["model"].clone(), body["temperature"].clone()),
        (json!("m"), json!(0.5))
    );
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    s.finish(first, reply("Hello!")).await.unwrap();

    let second = turn(
        &s,
        json!({"model": "m", "messages": [{"role": "user", "content": "And?"}]}),
    )
    .await;
    assert_eq!(
        sent(&second)["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "And?"},
        ])
    );
    // A system message in the request replaces the stored one.
    let third = turn(
        &s,
        json!({"model": "m", "messages": [
            {"role": "system", "content": "Be verbose."}, {"role": "user", "content": "Go"},
        ]}),
    )
    .await;
    assert_eq!(sent(&third)["messages"][0]["content"], "Be verbose.");
    assert_eq!(
        sent(&third)["messages"].as_array().unwrap().len(),
        4,
        "the turn before second was not stored"
    );
}

#[tokio::test]
async fn a_failed_turn_appends_nothing_and_other_keys_are_refused() {
    let s = sessions(10_000, 20_000, 4);
    let t = turn(
        &s,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    drop(t); // the upstream failed: finish is never called
    assert!(
        s.get("s1", Some("team"), false).await.is_err(),
        "nothing stored"
    );
    let t = turn(
        &s,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    s.finish(t, reply("Hello")).await.unwrap();
    let other = s
        .begin(
            "s1",
            Some("intruder"),
            br#"{"model":"m","messages":[]}"#,
            E,
            no_compression,
        )
        .await;
    assert_eq!(other.err().unwrap().status(), 403);
    assert_eq!(
        s.get("s1", Some("team"), false)
            .await
            .unwrap()
            .session
            .messages
            .len(),
        2
    );
}

/// Eight user/assistant pairs of ~12 tokens, then a compression keeping the 4 most recent.
async fn filled(s: &Sessions) {
    for i in 0..8 {
        let t = turn(s, json!({"model": "m", "messages": [{"role": "user", "content": format!("question number {i} about things")}]})).await;
        s.finish(t, reply(&format!("answer number {i} about things")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn compression_keeps_recent_messages_and_a_summary_prefix() {
    let s = sessions(60, 10_000, 4);
    filled(&s).await;
    let before = s.get("s1", Some("team"), false).await.unwrap();
    assert_eq!(before.session.messages.len(), 16);
    let mut seen = Vec::new();
    s.compress("s1", E, |messages| {
        seen = messages;
        async { Ok("they talked about things".to_owned()) }
    })
    .await
    .unwrap();
    assert!(
        seen[1]["content"]
            .as_str()
            .unwrap()
            .contains("question number 0")
    );
    let after = s.get("s1", Some("team"), false).await.unwrap();
    assert_eq!(after.session.messages.len(), 4);
    assert_eq!(after.session.compressions, 1);
    let next = turn(
        &s,
        json!({"model": "m", "messages": [{"role": "user", "content": "next"}]}),
    )
    .await;
    let messages = sent(&next)["messages"].clone();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .ends_with("they talked about things")
    );
    assert_eq!(messages[1]["content"], "question number 6 about things");
}

#[tokio::test]
async fn a_failed_summary_drops_the_oldest_turns_to_fit() {
    let s = sessions(60, 10_000, 4);
    filled(&s).await;
    s.compress("s1", E, |_| async {
        Err(GatewayError::new(
            ErrorKind::UpstreamFailed,
            "summary model down",
        ))
    })
    .await
    .unwrap();
    let after = s.get("s1", Some("team"), false).await.unwrap();
    assert!(after.tokens <= 60, "{} tokens", after.tokens);
    assert!(after.session.summary.is_none());
    assert!(!after.session.messages.is_empty());
}

#[test]
fn a_tool_call_is_never_parted_from_its_results() {
    let stored = |role: &str| {
        StoredMessage::new(
            1,
            serde_json::value::to_raw_value(&json!({"role": role, "content": "x"})).unwrap(),
        )
    };
    let messages: Vec<StoredMessage> = ["user", "assistant", "tool", "tool", "user"]
        .iter()
        .map(|r| stored(r))
        .collect();
    assert_eq!(
        tool_safe_split(&messages, 3),
        1,
        "the split moves before the assistant's call"
    );
    assert_eq!(tool_safe_split(&messages, 4), 4);
}

#[test]
fn session_ids_are_checked() {
    assert!(check_id("user-1:chat_2.b").is_ok());
    for bad in ["", "has space", "emoji🙂", &"x".repeat(129)] {
        assert_eq!(check_id(bad).unwrap_err().status(), 400, "{bad:?}");
    }
}

#[tokio::test]
async fn max_tokens_is_a_hard_ceiling_even_when_compression_cannot_help() {
    // Compression does nothing here (a no-op), so the turn leaves the oldest messages out.
    let s = sessions(40, 60, 4);
    filled(&s).await;
    let next = turn(
        &s,
        json!({"model": "m", "messages": [{"role": "user", "content": "next"}]}),
    )
    .await;
    let messages = sent(&next)["messages"].as_array().unwrap().clone();
    let history = &messages[..messages.len() - 1];
    let tokens: u64 = history.iter().map(|m| E.count_message(m)).sum();
    assert!(tokens <= 60, "{tokens} tokens of history");
    assert_eq!(
        history.last().unwrap()["content"],
        "answer number 7 about things"
    );
    let stored = s.get("s1", Some("team"), false).await.unwrap();
    assert_eq!(
        stored.session.messages.len(),
        16,
        "left out of the turn, not deleted"
    );
}
