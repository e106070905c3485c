//! Drop-in: real OpenAI clients against the gateway. The official `openai` Python package runs
//! `tests/dropin/openai_sdk.py`; the async-openai crate runs here.

use std::process::Command;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequestArgs, FunctionObjectArgs,
};
use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
use futures_util::StreamExt;
use serde_json::json;

use crate::dashscope::dashscope_config;
use crate::harness::{Gateway, config_for};
use crate::mock_anthropic::MockAnthropic;
use crate::mock_dashscope::MockDashScope;
use crate::mock_openai::MockOpenAi;

const KEY_CONFIG: &str = "auth:\n  keys:\n    - { name: dropin, key: sk-dropin }\n";

#[tokio::test]
async fn openai_python_sdk() {
    let a = MockOpenAi::start("a").await;
    run_python(Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await).await;
}

#[tokio::test]
async fn openai_python_sdk_on_a_dashscope_route() {
    let a = MockDashScope::start("a").await;
    run_python(Gateway::start(&dashscope_config(&a, None, KEY_CONFIG)).await).await;
}

#[tokio::test]
async fn responses_through_the_openai_python_sdk_and_the_agents_sdk() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await;
    run_client(
        gw,
        "python3",
        "responses_sdk.py",
        "all responses checks passed",
    )
    .await;
}

#[tokio::test]
async fn rerank_through_the_cohere_python_sdk() {
    // The offline default's `demo-rerank` (the in-process mock answers it).
    run_client(
        Gateway::start(&crate::harness::offline_default()).await,
        "python3",
        "cohere_sdk.py",
        "all cohere checks passed",
    )
    .await;
}

#[tokio::test]
async fn audio_images_and_moderations_through_the_openai_python_sdk() {
    run_client(
        Gateway::start(&crate::harness::offline_default()).await,
        "python3",
        "media_sdk.py",
        "all media checks passed",
    )
    .await;
}

#[tokio::test]
async fn responses_through_the_vercel_ai_sdk() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await;
    run_client(gw, "node", "ai_sdk.mjs", "all ai-sdk checks passed").await;
}

#[tokio::test]
async fn messages_through_the_anthropic_python_sdk() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await;
    run_client(
        gw,
        "python3",
        "anthropic_sdk.py",
        "all anthropic checks passed",
    )
    .await;
}

#[tokio::test]
async fn messages_through_the_anthropic_typescript_sdk() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await;
    run_client(
        gw,
        "node",
        "anthropic_sdk.mjs",
        "all anthropic-ts checks passed",
    )
    .await;
}

/// Claude Code (the npm package's native binary, offline) in print mode with only its base URL,
/// token and model pointed at the gateway: a turn where the model calls `Bash`, Claude Code runs
/// it and sends the output back, and the model's answer. Here over a chat route (translated).
#[tokio::test]
async fn claude_code_runs_a_tool_loop_through_the_gateway() {
    let a = MockOpenAi::start("a").await;
    let gw = Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await;
    run_claude_code(&gw).await;
    // The model's Bash call ran: its output came back to the upstream as the tool's result.
    let ran = a.requests().iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["role"] == "tool" && m["content"].to_string().contains("switchyard-tool-ok")
            })
        })
    });
    assert!(ran, "the tool's output reached the upstream");
}

/// The same over a `kind: anthropic` route: Claude Code's own requests go up as it sent them.
#[tokio::test]
async fn claude_code_runs_a_tool_loop_through_an_anthropic_route() {
    let a = MockAnthropic::start("a").await;
    let yaml = format!(
        "providers:\n  - {{ id: claude, kind: anthropic, base_url: \"{}\", api_key: sk-ant, health_check: {{ enabled: false }} }}\nmodels:\n  - {{ name: gpt-4o-mini, routes: [{{ provider: claude, model: claude-up }}] }}\n{KEY_CONFIG}",
        a.base_url()
    );
    let gw = Gateway::start(&yaml).await;
    run_claude_code(&gw).await;
    let sent = a.requests();
    assert!(
        sent.iter()
            .all(|r| r.body["model"] == "claude-up" && r.headers.contains_key("anthropic-beta")),
        "Claude Code's bodies and betas, with the route's model"
    );
    let ran = sent.iter().any(|r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["content"].to_string().contains("switchyard-tool-ok"))
        })
    });
    assert!(
        ran,
        "the tool's output reached the upstream as a tool_result"
    );
}

/// Runs `claude -p` against the gateway's `gpt-4o-mini` until the mock's Bash call has run and
/// the model has answered "Hello from a".
async fn run_claude_code(gw: &Gateway) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dropin");
    let home = std::env::temp_dir().join(crate::harness::unique("claude-home"));
    std::fs::create_dir_all(&home).unwrap();
    let base = gw.url("");
    let run_home = home.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(format!("{dir}/node_modules/.bin/claude"))
            .args([
                "-p",
                "Print the marker with Bash.",
                "--output-format",
                "json",
                "--allowedTools",
                "Bash(echo:*)",
            ])
            .current_dir(&run_home)
            .env("HOME", &run_home)
            .env("ANTHROPIC_BASE_URL", base)
            .env("ANTHROPIC_AUTH_TOKEN", "sk-dropin")
            .env("ANTHROPIC_MODEL", "gpt-4o-mini")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env_remove("ANTHROPIC_API_KEY")
            .output()
    })
    .await
    .unwrap()
    .expect("claude runs (the README's test command installs it from npm)");
    let _ = std::fs::remove_dir_all(&home);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "claude failed:\n{stdout}\n{stderr}"
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("claude's JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "Hello from a", "{result}");
}

#[tokio::test]
async fn async_openai_crate() {
    let a = MockOpenAi::start("a").await;
    run_async_openai(&Gateway::start(&config_for(&[("a", &a.base_url(), 1, 1)], KEY_CONFIG)).await)
        .await;
}

#[tokio::test]
async fn async_openai_crate_on_a_dashscope_route() {
    let a = MockDashScope::start("a").await;
    run_async_openai(&Gateway::start(&dashscope_config(&a, None, KEY_CONFIG)).await).await;
}

async fn run_python(gw: Gateway) {
    run_client(
        gw,
        "python3",
        "openai_sdk.py",
        "all openai-python checks passed",
    )
    .await;
}

/// Runs a real client (`program` on `tests/dropin/{script}`) against the gateway; it must exit 0
/// and print `passed`.
async fn run_client(gw: Gateway, program: &'static str, script: &'static str, passed: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dropin");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .arg(format!("{dir}/{script}"))
            .current_dir(dir)
            .env("SWITCHYARD_BASE_URL", gw_url(&gw))
            .env("SWITCHYARD_API_KEY", "sk-dropin")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .map(|o| (o, gw))
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{program} runs (the README's test command installs it): {e}"));
    let (output, _gw) = output;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains(passed), "{stdout}");
}

fn gw_url(gw: &Gateway) -> String {
    gw.url("/v1")
}

async fn run_async_openai(gw: &Gateway) {
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(gw.url("/v1"))
            .with_api_key("sk-dropin"),
    );

    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("hi")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let reply = client.chat().create(request).await.unwrap();
    assert_eq!(
        reply.choices[0].message.content.as_deref(),
        Some("Hello from a")
    );
    assert_eq!(reply.usage.unwrap().total_tokens, 29);

    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .stream(true)
        .stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        })
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("hi")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let mut stream = client.chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(u) = chunk.usage {
            usage = Some(u.total_tokens);
        }
        for choice in chunk.choices {
            text += choice.delta.content.as_deref().unwrap_or("");
        }
    }
    assert_eq!(text, "Hello from a");
    assert_eq!(usage, Some(60));

    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObjectArgs::default()
            .name("get_weather")
            .parameters(json!({"type": "object", "properties": {"city": {"type": "string"}}}))
            .build()
            .unwrap(),
    });
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .stream(true)
        .tools(vec![tool])
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("weather?")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let mut stream = client.chat().create_stream(request).await.unwrap();
    let mut arguments = String::new();
    let mut name = None;
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            for call in choice.delta.tool_calls.unwrap_or_default() {
                if let Some(f) = call.function {
                    name = name.or(f.name);
                    arguments += f.arguments.as_deref().unwrap_or("");
                }
            }
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(arguments, "{\"city\":\"Paris\"}");

    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-small")
        .input(["a", "b"])
        .build()
        .unwrap();
    let embeddings = client.embeddings().create(request).await.unwrap();
    assert_eq!(embeddings.data.len(), 2);
    assert_eq!(embeddings.data[1].embedding.len(), 3);

    let models = client.models().list().await.unwrap();
    assert!(models.data.iter().any(|m| m.id == "gpt-4o-mini"));
}
