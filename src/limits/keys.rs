//! Gateway API keys. Only SHA-256 digests are kept after load. A presented key is hashed and
//! looked up by its digest: what the lookup's timing can tell is how a stored digest compares
//! with the digest of what the caller sent, and turning that into a key would take a SHA-256
//! preimage; the cost is the same for 10 keys or 100,000 (a control plane's worth). Neither
//! timing nor a memory dump gives a key away. A key may carry an expiry, and a rotated key its
//! old digest until the rotation's grace ends: those are checked against the clock per request.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::budget::Budget;
use crate::config::KeyConfig;
use crate::error::{ErrorKind, GatewayError};

/// The caller a request was authenticated as.
#[derive(Debug)]
pub struct ApiKey {
    pub name: Arc<str>,
    pub admin: bool,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub budget: Option<Budget>,
    models: Option<Vec<String>>,
}

/// A key as the store takes it, from the config file or the control plane's table.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub name: String,
    pub digest: [u8; 32],
    /// A rotated-out digest that still works until this Unix second (the rotation's grace).
    pub previous: Option<([u8; 32], u64)>,
    /// After this Unix second the key is refused.
    pub expires_at: Option<u64>,
    pub admin: bool,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub models: Option<Vec<String>>,
    pub budget: Option<Budget>,
}

#[derive(Debug, Default)]
pub struct KeyStore {
    by_digest: HashMap<[u8; 32], Entry>,
}

#[derive(Debug)]
struct Entry {
    key: Arc<ApiKey>,
    /// The Unix second from which this digest is refused (expiry, or a rotation's grace end).
    until: Option<u64>,
}

// === impl KeySpec ===

impl KeySpec {
    /// `auth.keys[i]` of the config file.
    pub fn from_config(i: usize, k: &KeyConfig) -> Result<Self, String> {
        let digest = match (&k.key, &k.key_sha256) {
            (Some(key), _) => digest(key.expose()),
            (None, Some(hex)) => decode_hex(hex)
                .ok_or_else(|| format!("auth.keys[{i}].key_sha256: not 64 hex characters"))?,
            (None, None) => return Err(format!("auth.keys[{i}]: no key")),
        };
        Ok(Self {
            name: k.name.clone(),
            digest,
            previous: None,
            expires_at: None,
            admin: k.admin,
            rpm: k.rpm,
            tpm: k.tpm,
            models: k.models.clone(),
            budget: k.budget.as_ref().map(Budget::from_config),
        })
    }
}

// === impl KeyStore ===

impl KeyStore {
    pub fn build(configs: &[KeyConfig]) -> Result<Self, String> {
        let specs = configs
            .iter()
            .enumerate()
            .map(|(i, k)| KeySpec::from_config(i, k))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_specs(&specs)
            .map_err(|i| format!("auth.keys[{i}]: the same key is configured twice"))
    }

    /// The store of these keys; `Err(i)` when `specs[i]` repeats an earlier key's digest.
    pub fn from_specs(specs: &[KeySpec]) -> Result<Self, usize> {
        let mut by_digest = HashMap::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let key = Arc::new(ApiKey {
                name: spec.name.as_str().into(),
                admin: spec.admin,
                rpm: spec.rpm,
                tpm: spec.tpm,
                budget: spec.budget,
                models: spec.models.clone(),
            });
            let entry = Entry {
                key: key.clone(),
                until: spec.expires_at,
            };
            if by_digest.insert(spec.digest, entry).is_some() {
                return Err(i);
            }
            if let Some((previous, grace_ends)) = spec.previous {
                let until = spec.expires_at.map_or(grace_ends, |e| e.min(grace_ends));
                // A previous digest never displaces a current key.
                by_digest.entry(previous).or_insert(Entry {
                    key,
                    until: Some(until),
                });
            }
        }
        Ok(Self { by_digest })
    }

    /// True when no key is configured: the gateway is open.
    pub fn is_open(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The key a request presents as `Authorization: Bearer <key>` or, as Anthropic's SDKs and
    /// Claude Code send it, `x-api-key: <key>`. `Ok(None)` on an open gateway.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Arc<ApiKey>>, GatewayError> {
        if self.is_open() {
            return Ok(None);
        }
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let x_api_key = || headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let presented = bearer
            .filter(|t| !t.is_empty())
            .or_else(|| x_api_key().map(str::trim).filter(|t| !t.is_empty()))
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::Unauthorized,
                    "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                )
            })?;
        match self.by_digest.get(&digest(presented)) {
            Some(entry)
                if entry
                    .until
                    .is_none_or(|until| crate::clock::unix_now() < until) =>
            {
                Ok(Some(entry.key.clone()))
            }
            Some(_) => Err(GatewayError::new(
                ErrorKind::Unauthorized,
                "This API key has expired.",
            )),
            None => Err(GatewayError::new(
                ErrorKind::Unauthorized,
                "Incorrect API key provided.",
            )),
        }
    }
}

// === impl ApiKey ===

impl ApiKey {
    /// Whether this key may use `model` (allow-list entries: exact names, `*`, or `prefix*`).
    pub fn allows(&self, model: &str) -> bool {
        match &self.models {
            None => true,
            Some(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => p == model,
            }),
        }
    }
}

/// The 403 for a model outside a key's allow-list.
pub fn not_allowed(model: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::ModelNotAllowed,
        format!("This API key is not allowed to use the model `{model}`."),
    )
    .with_param("model")
}

/// The SHA-256 of a key: all that is ever stored of it.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
