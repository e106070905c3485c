//! A connection must send its first byte within `header_read_timeout`. hyper's own header
//! timeout starts with a request's first byte, and the HTTP/1-or-h2 detection before it waits
//! for ever: without this, sockets that send nothing hold the connection cap (60 of them on a cap
//! of 50 stopped `/health`). Once a byte has arrived the wrapper is a plain pass-through, but for
//! showing the first bytes to [`Activity::sniff`] until they tell the protocol.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::idle::Activity;

pub struct FirstByte<T> {
    inner: T,
    /// Until the first byte: when the connection is given up.
    deadline: Option<Pin<Box<Sleep>>>,
    activity: Arc<Activity>,
}

// === impl FirstByte ===

impl<T> FirstByte<T> {
    pub fn new(inner: T, within: Duration, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstByte<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                    if this.activity.sniffing() {
                        this.activity.sniff(&buf.filled()[before..]);
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                match expired {
                    true => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within header_read_timeout",
                    ))),
                    false => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstByte<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
