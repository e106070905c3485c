//! The crash journal of the Postgres ledger: each row is appended (one `write(2)`, no fsync) to
//! a journal segment before its response ends, so a `kill -9` loses no answered request's row —
//! the page cache outlives the process. The writer closes the current segment at every batch
//! and deletes a closed segment once every row in it has reached the database or the spill
//! file. At start, segments a crash left behind are moved into the spill file, which the writer
//! replays idempotently (`ON CONFLICT DO NOTHING`), so a row in both is written once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::line::write_line;
use super::record::UsageRecord;

/// The journal: the segment rows are appended to, and how many each open or closed segment
/// holds.
pub struct Journal {
    base: PathBuf,
    current: Mutex<Segment>,
}

struct Segment {
    number: u64,
    file: File,
    rows: u64,
}

// === impl Journal ===

impl Journal {
    /// Opens a fresh journal next to `spill` (`<spill>.journal.<n>`), first moving any segment a
    /// crash left behind into the spill file.
    pub fn open(spill: &Path) -> io::Result<Self> {
        let base = PathBuf::from(format!("{}.journal", spill.display()));
        let left = leftover_segments(&base)?;
        let next = left.iter().map(|(n, _)| n + 1).max().unwrap_or(1);
        if !left.is_empty() {
            let mut spill_file = OpenOptions::new().create(true).append(true).open(spill)?;
            for (_, path) in &left {
                let rows = std::fs::read(path)?;
                // A torn last line (the crash came mid-write) is skipped when the spill is read.
                spill_file.write_all(&rows)?;
                if !rows.ends_with(b"\n") {
                    spill_file.write_all(b"\n")?;
                }
            }
            spill_file.sync_data()?;
            for (_, path) in &left {
                std::fs::remove_file(path)?;
            }
            tracing::info!(segments = left.len(), spill = %spill.display(), "usage journal recovered into the spill file");
        }
        let file = segment_file(&base, next)?;
        Ok(Self {
            base,
            current: Mutex::new(Segment {
                number: next,
                file,
                rows: 0,
            }),
        })
    }

    /// Appends a row; returns the segment it is in. A failed write is logged and the row still
    /// goes to the writer (it is then only as safe as before the journal existed).
    pub fn append(&self, record: &UsageRecord) -> u64 {
        let mut line = Vec::with_capacity(384);
        write_line(record, &mut line);
        let mut current = self.lock();
        if let Err(e) = current.file.write_all(&line) {
            tracing::error!(error = %e, "usage journal write failed");
        }
        current.rows += 1;
        current.number
    }

    /// Closes the current segment (if it holds rows) and starts the next; returns the closed
    /// segment's number and row count.
    pub fn rotate(&self) -> io::Result<Option<(u64, u64)>> {
        let mut current = self.lock();
        if current.rows == 0 {
            return Ok(None);
        }
        let next = current.number + 1;
        let file = segment_file(&self.base, next)?;
        let closed = std::mem::replace(
            &mut *current,
            Segment {
                number: next,
                file,
                rows: 0,
            },
        );
        Ok(Some((closed.number, closed.rows)))
    }

    /// Every row of segment `number` is safe elsewhere: delete it.
    pub fn release(&self, number: u64) {
        let path = segment_path(&self.base, number);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %path.display(), "usage journal segment not removed");
        }
    }

    /// At a clean stop, with every row safe: the open segment goes too if it is empty.
    pub fn close(&self) {
        let current = self.lock();
        if current.rows == 0 {
            self.release(current.number);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segment> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn segment_path(base: &Path, number: u64) -> PathBuf {
    PathBuf::from(format!("{}.{number}", base.display()))
}

fn segment_file(base: &Path, number: u64) -> io::Result<File> {
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(base, number))
}

/// Segments left by an earlier process, by number.
fn leftover_segments(base: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = match base.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Some(prefix) = base
        .file_name()
        .map(|n| format!("{}.", n.to_string_lossy()))
    else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}
