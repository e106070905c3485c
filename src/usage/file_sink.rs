//! The file sink: ledger rows as JSON lines in `usage.path`, rotated by size
//! ([`super::rotation`]). `append` is also how the Postgres sink spills.

use std::path::PathBuf;

use super::UsageError;
use super::line::write_line;
use super::record::UsageRecord;
use crate::config::UsageConfig;

/// The JSON-lines file sink, rotated by size.
pub struct FileSink {
    pub path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

// === impl FileSink ===

impl FileSink {
    pub fn new(config: &UsageConfig) -> Self {
        Self {
            path: PathBuf::from(&config.path),
            max_bytes: config.max_file_bytes,
            keep: config.keep_files,
        }
    }

    /// Rotates the file if it is full, then appends the batch.
    pub async fn write(&self, batch: &[UsageRecord]) -> Result<(), UsageError> {
        let (path, max, keep) = (self.path.clone(), self.max_bytes, self.keep);
        let rotated =
            tokio::task::spawn_blocking(move || super::rotation::rotate_if_full(&path, max, keep))
                .await
                .map_err(|e| UsageError(e.to_string()))?
                .map_err(|e| UsageError(format!("rotating {}: {e}", self.path.display())))?;
        if rotated {
            tracing::info!(path = %self.path.display(), keep = self.keep, "usage file rotated");
        }
        append(self.path.clone(), batch).await
    }
}

/// Appends records as JSON lines and fsyncs: once this returns, they survive a crash.
pub async fn append(path: PathBuf, batch: &[UsageRecord]) -> Result<(), UsageError> {
    let mut lines = Vec::with_capacity(batch.len() * 320);
    for record in batch {
        write_line(record, &mut lines);
    }
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&lines)?;
        file.sync_data()
    })
    .await
    .map_err(|e| UsageError(e.to_string()))?
    .map_err(|e| UsageError(format!("{e}")))
}
