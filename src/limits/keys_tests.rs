//! Gateway keys: plain and hashed, an open gateway, allow-list wildcards, lookup among 100,000 by
//! digest, never kept in clear.

use super::*;
use crate::secret::Secret;

fn key(name: &str, key: Option<&str>, sha: Option<&str>, models: Option<Vec<&str>>) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        key: key.map(Secret::new),
        key_sha256: sha.map(str::to_owned),
        rpm: None,
        tpm: None,
        admin: false,
        models: models.map(|m| m.into_iter().map(str::to_owned).collect()),
        budget: None,
    }
}

fn headers(auth: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, auth.parse().unwrap());
    h
}

#[test]
fn accepts_plain_and_hashed_keys_and_refuses_others() {
    // sha256("test")
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let store = KeyStore::build(&[
        key("a", Some("sk-a"), None, None),
        key("ops", None, Some(sha), None),
    ])
    .unwrap();
    assert_eq!(
        &*store
            .authenticate(&headers("Bearer sk-a"))
            .unwrap()
            .unwrap()
            .name,
        "a"
    );
    assert_eq!(
        &*store
            .authenticate(&headers("bearer test"))
            .unwrap()
            .unwrap()
            .name,
        "ops"
    );
    for bad in ["Bearer sk-b", "Bearer ", "Basic sk-a", "sk-a"] {
        assert_eq!(
            store
                .authenticate(&headers(bad))
                .unwrap_err()
                .status()
                .as_u16(),
            401,
            "{bad}"
        );
    }
    assert_eq!(
        store
            .authenticate(&HeaderMap::new())
            .unwrap_err()
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn open_gateway_authenticates_nobody_and_refuses_nobody() {
    assert!(
        KeyStore::build(&[])
            .unwrap()
            .authenticate(&HeaderMap::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn allow_lists_support_wildcards() {
    let store =
        KeyStore::build(&[key("a", Some("k"), None, Some(vec!["gpt-4o*", "demo"]))]).unwrap();
    let k = store.authenticate(&headers("Bearer k")).unwrap().unwrap();
    assert!(k.allows("gpt-4o-mini") && k.allows("demo"));
    assert!(!k.allows("demo-embedding") && !k.allows("qwen-plus"));
}

#[test]
fn a_hundred_thousand_keys_are_found_by_digest_and_duplicates_refused() {
    let configs: Vec<KeyConfig> = (0..100_000)
        .map(|i| KeyConfig::plain(format!("team-{i}"), format!("sk-sy-{i:040}")))
        .collect();
    let store = KeyStore::build(&configs).unwrap();
    let found = store
        .authenticate(&headers(&format!("Bearer sk-sy-{:040}", 99_999)))
        .unwrap()
        .unwrap();
    assert_eq!(&*found.name, "team-99999");
    assert!(store.authenticate(&headers("Bearer sk-sy-nope")).is_err());
    let twice = [
        key("a", Some("same"), None, None),
        key("b", Some("same"), None, None),
    ];
    assert_eq!(
        KeyStore::build(&twice).unwrap_err(),
        "auth.keys[1]: the same key is configured twice"
    );
}

#[test]
fn keys_are_not_kept_in_clear() {
    let store = KeyStore::build(&[key("a", Some("sk-very-secret"), None, None)]).unwrap();
    assert!(!format!("{store:?}").contains("sk-very-secret"));
}
