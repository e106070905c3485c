//! The file sink's rotation: past `usage.max_file_bytes` the file becomes `path.1` (the
//! previous `path.1` becomes `path.2`, and so on), and only `usage.keep_files` rotated files are
//! kept, so the sink never fills a disk.

use std::io;
use std::path::{Path, PathBuf};

/// Rotates `path` if it has reached `max_bytes`. Blocking (file system calls).
pub fn rotate_if_full(path: &Path, max_bytes: u64, keep: u32) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() >= max_bytes => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    if keep == 0 {
        std::fs::remove_file(path)?;
        return Ok(true);
    }
    ignore_missing(std::fs::remove_file(numbered(path, keep)))?;
    for n in (1..keep).rev() {
        ignore_missing(std::fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    std::fs::rename(path, numbered(path, 1))?;
    Ok(true)
}

/// Every file the sink may hold rows in, oldest first.
pub fn files(path: &Path, keep: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=keep).rev().map(|n| numbered(path, n)).collect();
    files.push(path.to_path_buf());
    files
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_past_the_size_and_only_keep_are_kept() {
        let dir = std::env::temp_dir().join(format!("switchyard-rotation-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("usage.jsonl");
        for generation in 0..5 {
            std::fs::write(&path, format!("generation {generation}\n")).unwrap();
            assert!(rotate_if_full(&path, 5, 2).unwrap());
        }
        assert!(
            !rotate_if_full(&path, 5, 2).unwrap(),
            "nothing to rotate: the file is gone"
        );
        let read = |n: u32| std::fs::read_to_string(numbered(&path, n)).ok();
        assert_eq!(read(1).as_deref(), Some("generation 4\n"));
        assert_eq!(read(2).as_deref(), Some("generation 3\n"));
        assert_eq!(read(3), None, "only two rotated files are kept");
        std::fs::write(&path, "x").unwrap();
        assert!(
            !rotate_if_full(&path, 5, 2).unwrap(),
            "under the size: untouched"
        );
        assert_eq!(files(&path, 2).len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
