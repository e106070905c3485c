//! `${VAR}` and `${VAR:-default}` expansion over the parsed YAML tree.
//!
//! Expansion runs on string scalars after parsing, not on the raw text, so a value that contains
//! `#`, `: ` or a newline can never change the structure of the document. A scalar that is exactly
//! one placeholder is re-read as YAML, so `rpm: ${TEAM_A_RPM:-600}` is still a number.

use serde_yaml_ng::Value;

/// Looks a variable up; injected so tests do not touch the process environment.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

// === impl ProcessEnv ===

impl Lookup for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Expands every string scalar in `value`; `path` is the field path used in errors.
pub fn expand(value: &mut Value, path: &str, env: &dyn Lookup) -> Result<(), (String, String)> {
    match value {
        Value::String(text) if text.contains("${") => {
            let expanded = expand_str(text, env).map_err(|msg| (path.to_owned(), msg))?;
            let whole = text.trim().starts_with("${")
                && text.trim().ends_with('}')
                && text.matches("${").count() == 1;
            *value = match whole {
                true => reparse_scalar(expanded),
                false => Value::String(expanded),
            };
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                expand(item, &child, env)?;
            }
        }
        Value::Tagged(tagged) => expand(&mut tagged.value, path, env)?,
        _ => {}
    }
    Ok(())
}

fn expand_str(text: &str, env: &dyn Lookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated placeholder in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid variable name {name:?} in {text:?}"));
        }
        // `${VAR:-default}` also replaces a variable that is set but empty, as in POSIX shells.
        let value = match (env.get(name), default) {
            (Some(v), None) => v,
            (Some(v), Some(_)) if !v.is_empty() => v,
            (_, Some(default)) => default.to_owned(),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `${RPM:-600}` becomes the number 600, `${FLAG:-true}` the bool; anything that is not a plain
/// scalar stays a string (a key that happens to look like YAML must not become a mapping).
fn reparse_scalar(text: String) -> Value {
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-1".into()),
            "EMPTY" => Some(String::new()),
            "RPM" => Some("600".into()),
            _ => None,
        }
    }

    fn run(yaml: &str) -> Result<Value, (String, String)> {
        let mut v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        expand(&mut v, "", &env).map(|()| v)
    }

    #[test]
    fn expands_set_unset_and_defaults() {
        let v = run("a: ${KEY}\nb: ${MISSING:-dflt}\nc: pre-${KEY}-post\nd: ${EMPTY:-fallback}\ne: ${EMPTY}").unwrap();
        assert_eq!(v["a"], Value::String("sk-1".into()));
        assert_eq!(v["b"], Value::String("dflt".into()));
        assert_eq!(v["c"], Value::String("pre-sk-1-post".into()));
        assert_eq!(v["d"], Value::String("fallback".into()));
        assert_eq!(v["e"], Value::String(String::new()));
    }

    #[test]
    fn whole_placeholders_keep_their_scalar_type() {
        let v = run("rpm: ${RPM}\nn: ${NOPE:-12}\nname: \"${NOPE:-a: b}\"").unwrap();
        assert_eq!(v["rpm"].as_u64(), Some(600));
        assert_eq!(v["n"].as_u64(), Some(12));
        assert_eq!(v["name"], Value::String("a: b".into()));
    }

    #[test]
    fn unset_without_default_names_the_path() {
        let err = run("auth:\n  keys:\n    - key: ${TEAM_A_KEY}").unwrap_err();
        assert_eq!(err.0, "auth.keys[0].key");
        assert!(err.1.contains("TEAM_A_KEY"), "{}", err.1);
    }
}
