//! Which protocol a connection speaks, told from its first bytes without reading them: HTTP/2
//! (h2c, prior knowledge) sends the preface first (RFC 9113 §3.4), anything else is HTTP/1.
//!
//! hyper-util's `auto` builder reads those bytes itself (a 24-byte read) and hands them back to
//! hyper first: hyper's first read then saw only them, and the read buffer it grew to take the
//! rest stayed at 16 KiB for the connection's life, twice what one request needs (8 KiB of every
//! open stream's memory, and one more read per connection). A `peek` leaves the bytes in the
//! socket for hyper's first read, which takes the whole request head.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// What every HTTP/2 connection sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A client that sent part of the preface is asked again after this (peeking again at once
/// would only see the same bytes).
const PARTIAL_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// The connection's protocol, once its first bytes tell it; `None` if it closes first. Waits
/// for ever: the caller bounds it (`header_read_timeout`).
pub async fn detect(stream: &TcpStream) -> io::Result<Option<Protocol>> {
    let mut first = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        match tell(&first[..n]) {
            Some(protocol) => return Ok(Some(protocol)),
            None => tokio::time::sleep(PARTIAL_RETRY).await,
        }
    }
}

/// The protocol `first` (a connection's first bytes) shows, `None` while it could still be the
/// preface.
fn tell(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn the_preface_tells_h2_and_anything_else_is_h1() {
        for cut in 0..PREFACE.len() {
            assert_eq!(tell(&PREFACE[..cut]), None, "{cut} bytes could still be h2");
        }
        assert_eq!(tell(PREFACE), Some(Protocol::Http2));
        assert_eq!(
            tell(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"),
            Some(Protocol::Http2)
        );
        for first in [
            &b"POST /v1/chat/completions HTTP/1.1\r\n"[..],
            b"PRI * HTTP/1.1\r\n",
            b"PO",
            b"G",
        ] {
            assert_eq!(tell(first), Some(Protocol::Http1));
        }
    }

    /// The bytes stay in the socket for the server to read; a preface sent in pieces is waited
    /// for; a connection that closes first tells nothing.
    #[tokio::test]
    async fn detection_reads_nothing_and_waits_for_a_split_preface() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let at = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut h1 = TcpStream::connect(at).await.expect("connect");
            h1.write_all(b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            let mut h2 = TcpStream::connect(at).await.expect("connect");
            h2.write_all(&PREFACE[..3]).await.expect("write");
            tokio::time::sleep(Duration::from_millis(30)).await;
            h2.write_all(&PREFACE[3..]).await.expect("write");
            let closed = TcpStream::connect(at).await.expect("connect");
            drop(closed);
            (h1, h2)
        });
        let (h1, _) = listener.accept().await.expect("accept");
        assert_eq!(detect(&h1).await.expect("h1"), Some(Protocol::Http1));
        let mut head = [0u8; 18];
        assert_eq!(
            h1.peek(&mut head).await.expect("peek"),
            18,
            "nothing was read"
        );
        let (h2, _) = listener.accept().await.expect("accept");
        assert_eq!(detect(&h2).await.expect("h2"), Some(Protocol::Http2));
        let (closed, _) = listener.accept().await.expect("accept");
        assert_eq!(detect(&closed).await.expect("closed"), None);
        drop(client.await.expect("client"));
    }
}
