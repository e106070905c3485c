use super::super::{ConfigError, parse};

fn env(name: &str) -> Option<String> {
    (name == "SET_KEY").then(|| "sk-set".to_owned())
}

fn err(yaml: &str) -> ConfigError {
    parse(yaml, &env).expect_err("config should be refused")
}

const PROVIDERS: &str = "providers:\n  - { id: openai, kind: openai, base_url: \"http://127.0.0.1:9/v1\" }\n  - { id: m, kind: mock }\n";

#[test]
fn unknown_provider_reference_names_the_route() {
    let yaml = format!(
        "{PROVIDERS}models:\n  - {{ name: a, routes: [{{provider: m, model: x}}] }}\n  - {{ name: b, routes: [{{provider: m, model: x}}] }}\n  - {{ name: c, routes: [{{provider: opneai, model: x}}] }}\n"
    );
    assert_eq!(
        err(&yaml).to_string(),
        "models[2].routes[0].provider: unknown provider \"opneai\""
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let e = err(&format!(
        "{PROVIDERS}models:\n  - {{ name: a, routes: [{{provider: m, model: x, wieght: 2}}] }}\n"
    ));
    assert_eq!(e.path, "models[0].routes[0].wieght");
    assert!(e.message.contains("unknown field `wieght`"), "{e}");
    let e = err("server:\n  listen: 0.0.0.0:1\n  colour: blue\n");
    assert_eq!(e.path, "server.colour");
    assert!(e.message.contains("colour"), "{e}");
    assert!(err("nonsense: 1\n").message.contains("nonsense"));
}

#[test]
fn unknown_provider_kind_names_the_field() {
    let e = err("providers:\n  - { id: x, kind: opneai }\n");
    assert_eq!(e.path, "providers[0].kind");
    assert!(e.message.contains("opneai"), "{e}");
}

#[test]
fn durations_need_units() {
    let e = err("server:\n  request_timeout: 30\n");
    assert_eq!(e.path, "server.request_timeout");
    assert!(e.message.contains("no unit"), "{e}");
}

#[test]
fn semantic_errors_name_their_field() {
    let cases = [
        (
            format!(
                "{PROVIDERS}models:\n  - {{ name: a, routes: [{{provider: m, model: x, weight: 0}}] }}\n"
            ),
            "models[0].routes[0].weight",
        ),
        (
            format!("{PROVIDERS}models:\n  - {{ name: a, routes: [] }}\n"),
            "models[0].routes",
        ),
        (
            format!(
                "{PROVIDERS}models:\n  - {{ name: a, routes: [{{provider: m, model: x}}] }}\n  - {{ name: a, routes: [{{provider: m, model: x}}] }}\n"
            ),
            "models[1].name",
        ),
        (
            "providers:\n  - { id: a, kind: openai }\n".to_owned(),
            "providers[0].base_url",
        ),
        (
            "providers:\n  - { id: a, kind: openai, base_url: ftp://x }\n".to_owned(),
            "providers[0].base_url",
        ),
        (
            "providers:\n  - { id: a, kind: mock }\n  - { id: a, kind: mock }\n".to_owned(),
            "providers[1].id",
        ),
        (
            "auth:\n  keys:\n    - { name: a }\n".to_owned(),
            "auth.keys[0]",
        ),
        (
            "auth:\n  keys:\n    - { name: a, key_sha256: abc }\n".to_owned(),
            "auth.keys[0].key_sha256",
        ),
        (
            "auth:\n  keys:\n    - { name: a, key: \"${UNSET_KEY}\" }\n".to_owned(),
            "auth.keys[0].key",
        ),
        (
            "routing:\n  max_attempts: 0\n".to_owned(),
            "routing.max_attempts",
        ),
        (
            "providers:\n  - { id: c, kind: anthropic }\n".to_owned(),
            "providers[0].base_url",
        ),
        (
            "providers:\n  - { id: c, kind: anthropic, base_url: \"https://api.anthropic.com\" }\nmodels:\n  - { name: e, type: embedding, routes: [{provider: c, model: x}] }\n".to_owned(),
            "models[0].routes[0].provider",
        ),
        (
            format!("{PROVIDERS}models:\n  - {{ name: a, max_output_tokens: 0, routes: [{{provider: m, model: x}}] }}\n"),
            "models[0].max_output_tokens",
        ),
    ];
    for (yaml, path) in cases {
        assert_eq!(err(&yaml).path, path, "for config:\n{yaml}");
    }
}

#[test]
fn providers_with_empty_keys_are_skipped_with_warnings() {
    let yaml = "providers:\n  - { id: real, kind: openai, base_url: \"https://api.openai.com/v1\", api_key: \"${UNSET:-}\" }\n  - { id: set, kind: openai, base_url: \"https://x.test/v1\", api_key: \"${SET_KEY}\" }\n  - { id: m, kind: mock }\nmodels:\n  - { name: only-real, routes: [{provider: real, model: gpt}] }\n  - { name: mixed, routes: [{provider: real, model: gpt}, {provider: m, model: demo}] }\n";
    let (config, warnings) = parse(yaml, &env).unwrap();
    let ids: Vec<_> = config.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["set", "m"]);
    let models: Vec<_> = config
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.routes.len()))
        .collect();
    assert_eq!(models, [("mixed", 1)]);
    assert!(
        warnings.iter().any(|w| w.contains("\"real\" skipped")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("\"only-real\" skipped")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("open")), "{warnings:?}");
}

#[test]
fn embedded_default_is_valid_offline() {
    let (config, _) = parse(super::super::EMBEDDED_DEFAULT, &|_: &str| None).unwrap();
    assert!(config.models.iter().any(|m| m.name == "demo"));
}
