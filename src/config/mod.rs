//! Configuration: YAML → env expansion → typed [`Config`] → validation, with field paths in
//! every error (`models[2].routes[0].provider: unknown provider "opneai"`).
//!
//! Pure data: nothing here imports from the layers above it.

mod duration;
mod env;
mod error;
mod schema;
mod size;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use duration::ConfigDuration;
pub use env::{Lookup, ProcessEnv};
pub use error::ConfigError;
pub use schema::*;
pub use size::ConfigBytes;

/// The embedded default: runs offline with no key and no service.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/switchyard.yaml");
pub const DEFAULT_PATH: &str = "config/switchyard.yaml";

/// A validated config plus what start-up should warn about (skipped providers, open gateway).
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub warnings: Vec<String>,
    /// Where it came from, for the start-up log and reloads.
    pub source: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

impl std::error::Error for ConfigError {}

// === impl ConfigSource ===

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Embedded => f.write_str("embedded default"),
        }
    }
}

/// Resolves the config the way the CLI documents: `--config`, else `$SWITCHYARD_CONFIG`, else
/// `config/switchyard.yaml`, else the embedded default.
pub fn resolve_source(explicit: Option<&Path>) -> ConfigSource {
    if let Some(p) = explicit {
        return ConfigSource::File(p.to_owned());
    }
    if let Some(p) = std::env::var_os("SWITCHYARD_CONFIG").filter(|p| !p.is_empty()) {
        return ConfigSource::File(PathBuf::from(p));
    }
    match Path::new(DEFAULT_PATH).exists() {
        true => ConfigSource::File(PathBuf::from(DEFAULT_PATH)),
        false => ConfigSource::Embedded,
    }
}

pub fn load(source: ConfigSource) -> Result<LoadedConfig, ConfigError> {
    let text = match &source {
        ConfigSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                path.display().to_string(),
                format!("cannot read config: {e}"),
            )
        })?,
        ConfigSource::Embedded => EMBEDDED_DEFAULT.to_owned(),
    };
    let (config, warnings) = parse(&text, &ProcessEnv)?;
    Ok(LoadedConfig {
        config,
        warnings,
        source,
    })
}

/// Parses and validates config text; `env` resolves `${VAR}` placeholders.
pub fn parse(text: &str, env: &dyn Lookup) -> Result<(Config, Vec<String>), ConfigError> {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::new("", format!("invalid YAML: {e}")))?;
    if value.is_null() {
        value = serde_yaml_ng::Value::Mapping(Default::default());
    }
    env::expand(&mut value, "", env).map_err(|(path, message)| ConfigError::new(path, message))?;
    let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    let warnings = validate::validate(&mut config)?;
    Ok((config, warnings))
}
