//! An upload spooled to disk while its fields are not yet known: an unlinked temporary file
//! (gone from the directory as soon as it is made, and from the disk when the last handle is
//! dropped, so a crash leaves nothing behind), read back by position for each route it is sent
//! to.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{ErrorKind, GatewayError};
use crate::routing::transport::ByteStream;

/// Read back this much at a time.
const PIECE: usize = 64 * 1024;

/// A spool being written.
pub struct Spool {
    file: tokio::fs::File,
    len: u64,
}

/// A spool written to its end, shared by the routes it is sent to.
#[derive(Clone)]
pub struct Spooled {
    file: Arc<std::fs::File>,
    len: u64,
}

// === impl Spool ===

impl Spool {
    pub async fn create() -> Result<Self, GatewayError> {
        let mut name = [0u8; 12];
        getrandom::getrandom(&mut name).map_err(|e| failed(&e))?;
        let mut file_name = String::from("switchyard-upload-");
        crate::hex::push(&mut file_name, &name);
        let path = std::env::temp_dir().join(file_name);
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| failed(&e))?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| failed(&e))?;
        Ok(Self { file, len: 0 })
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<(), GatewayError> {
        self.file.write_all(data).await.map_err(|e| failed(&e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub async fn finish(mut self) -> Result<Spooled, GatewayError> {
        self.file.flush().await.map_err(|e| failed(&e))?;
        Ok(Spooled {
            file: Arc::new(self.file.into_std().await),
            len: self.len,
        })
    }
}

// === impl Spooled ===

impl Spooled {
    /// The spooled body with `range` replaced by `with`, read from disk as it is sent.
    pub fn edited(&self, range: Range<u64>, with: Bytes) -> ByteStream {
        enum Piece {
            File(Range<u64>),
            Bytes(Bytes),
        }
        let pieces = vec![
            Piece::File(0..range.start),
            Piece::Bytes(with),
            Piece::File(range.end..self.len),
        ];
        let file = self.file.clone();
        futures_util::stream::unfold(
            (pieces.into_iter(), None::<Range<u64>>),
            move |(mut pieces, mut reading)| {
                let file = file.clone();
                async move {
                    loop {
                        if let Some(range) = reading.take().filter(|r| r.start < r.end) {
                            let want = ((range.end - range.start) as usize).min(PIECE);
                            let at = range.start;
                            let read = tokio::task::spawn_blocking(move || {
                                let mut buf = vec![0u8; want];
                                file.read_exact_at(&mut buf, at).map(|()| buf)
                            })
                            .await;
                            let buf = match read {
                                Ok(Ok(buf)) => buf,
                                Ok(Err(e)) => return Some((Err(failed(&e)), (pieces, None))),
                                Err(e) => return Some((Err(failed(&e)), (pieces, None))),
                            };
                            let next = range.start + buf.len() as u64..range.end;
                            return Some((Ok(Bytes::from(buf)), (pieces, Some(next))));
                        }
                        match pieces.next()? {
                            Piece::File(range) => reading = Some(range),
                            Piece::Bytes(b) if b.is_empty() => {}
                            Piece::Bytes(b) => return Some((Ok(b), (pieces, None))),
                        }
                    }
                }
            },
        )
        .boxed()
    }
}

fn failed(e: &dyn std::fmt::Display) -> GatewayError {
    GatewayError::new(
        ErrorKind::Internal,
        format!("could not spool the upload to a temporary file: {e}"),
    )
}
