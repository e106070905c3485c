//! Token counting: encodings per model, the reference token ids, the cookbook's chat counts, every
//! completion and embedding input shape.

use super::*;
use serde_json::json;

fn bpe_tokens(encoding: Encoding, text: &str) -> Vec<u32> {
    encoding.bpe().encode_ordinary(text)
}

#[test]
fn models_map_to_their_encodings_most_specific_prefix_first() {
    use Encoding::*;
    for (model, want) in [
        ("gpt-4o-mini", Some(O200kBase)),
        ("gpt-4.1-nano", Some(O200kBase)),
        ("gpt-5", Some(O200kBase)),
        ("o3-mini", Some(O200kBase)),
        ("gpt-4", Some(Cl100kBase)),
        ("gpt-4-turbo", Some(Cl100kBase)),
        ("gpt-3.5-turbo-0125", Some(Cl100kBase)),
        ("text-embedding-3-small", Some(Cl100kBase)),
        ("gpt-oss-120b", Some(O200kHarmony)),
        ("qwen-plus", None),
    ] {
        assert_eq!(Encoding::for_model(model), want, "{model}");
    }
}

// PROTOCOLS.md §7: vectors verified against the Python tiktoken.
#[test]
fn encodings_match_the_reference_token_ids() {
    assert_eq!(
        bpe_tokens(Encoding::O200kBase, "hello world"),
        [24912, 2375]
    );
    assert_eq!(
        bpe_tokens(Encoding::Cl100kBase, "hello world"),
        [15339, 1917]
    );
    assert_eq!(
        bpe_tokens(Encoding::O200kBase, "tiktoken is great!"),
        [83, 8251, 2488, 382, 2212, 0]
    );
    assert_eq!(
        bpe_tokens(Encoding::Cl100kBase, "tiktoken is great!"),
        [83, 1609, 5963, 374, 2294, 0]
    );
}

/// The OpenAI cookbook's example conversation: 124 prompt tokens on gpt-4o, 129 on gpt-4.
#[test]
fn chat_prompt_matches_the_cookbook_counts() {
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]})
    .to_string();
    assert_eq!(
        Encoding::O200kBase.count_chat_prompt(body.as_bytes()),
        Some(124)
    );
    assert_eq!(
        Encoding::Cl100kBase.count_chat_prompt(body.as_bytes()),
        Some(129)
    );
    let hello = json!({"messages": [{"role": "user", "content": "Hello"}]}).to_string();
    assert_eq!(
        Encoding::O200kBase.count_chat_prompt(hello.as_bytes()),
        Some(8)
    );
}

#[test]
fn content_parts_and_tool_calls_count_their_text_only() {
    let e = Encoding::O200kBase;
    let parts = json!({"role": "user", "content": [
        {"type": "text", "text": "hello world"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]});
    assert_eq!(e.count_message(&parts), PER_MESSAGE + 1 + 2);
    let call = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
    ]});
    let text = "get_weather{\"city\":\"Paris\"}";
    assert_eq!(e.count_message(&call), PER_MESSAGE + 1 + e.count(text));
}

#[test]
fn completions_count_every_choice_and_every_delta() {
    let e = Encoding::O200kBase;
    let body = json!({"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hello world"}},
        {"index": 1, "message": {"role": "assistant", "content": "tiktoken is great!"}},
    ]})
    .to_string();
    assert_eq!(e.count_chat_completion(body.as_bytes()), 2 + 6);

    let chunks = [
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}",
    ];
    assert_eq!(e.count_chat_chunks(chunks.iter().map(|c| c.as_bytes())), 2);
}

#[test]
fn embedding_inputs_of_every_shape() {
    let e = Encoding::Cl100kBase;
    let count = |v: Value| e.count_embedding_input(json!({"input": v}).to_string().as_bytes());
    assert_eq!(count(json!("hello world")), 2);
    assert_eq!(count(json!(["hello world", "tiktoken is great!"])), 8);
    assert_eq!(count(json!([1, 2, 3])), 3);
    assert_eq!(count(json!([[1, 2], [3]])), 3);
    assert_eq!(e.count_embedding_input(b"not json"), 0);
}

/// A word of megabytes is estimated, not encoded: BPE is quadratic in a piece's length, and
/// encoding this one would take minutes. Ordinary text around it is still encoded exactly.
#[test]
fn a_run_without_whitespace_too_long_to_encode_is_estimated() {
    let e = Encoding::O200kBase;
    let word = "a".repeat(2_000_000);
    assert_eq!(e.count(&word), 1_000_000);
    let around = format!("Hello there {word} and goodbye");
    assert_eq!(
        e.count(&around),
        e.count("Hello there ") + 1_000_000 + e.count(" and goodbye")
    );
    // Runs up to the bound are encoded as before.
    let long_but_fine = "ab".repeat(128);
    assert_eq!(
        e.count(&long_but_fine),
        bpe_tokens(e, &long_but_fine).len() as u64
    );
    let multibyte = "é".repeat(400);
    assert_eq!(e.count(&multibyte), 400);
}
