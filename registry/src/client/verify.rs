//! A blob body stream that checks size and digest as the bytes pass.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::response::classify;
use super::{Error, Result};
use crate::digest::{Digest, Digester};

/// Wraps a body stream: errors (and ends) as soon as more than `size` bytes arrive, and at the
/// end yields [`Error::SizeMismatch`] or [`Error::DigestMismatch`] instead of finishing.
pub(crate) struct VerifiedStream<S> {
    inner: S,
    digester: Option<Digester>,
    expected: Digest,
    size: u64,
    seen: u64,
    url: String,
    done: bool,
}

impl<S> VerifiedStream<S> {
    pub(crate) fn new(inner: S, expected: Digest, size: u64, url: String) -> Self {
        VerifiedStream {
            inner,
            digester: Some(expected.digester()),
            expected,
            size,
            seen: 0,
            url,
            done: false,
        }
    }
}

impl<S> Stream for VerifiedStream<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.size {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::SizeMismatch {
                        url: this.url.clone(),
                        expected: this.size,
                        actual: this.seen,
                    })));
                }
                if let Some(d) = this.digester.as_mut() {
                    d.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(classify(&this.url, e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                if this.seen != this.size {
                    return Poll::Ready(Some(Err(Error::SizeMismatch {
                        url: this.url.clone(),
                        expected: this.size,
                        actual: this.seen,
                    })));
                }
                let actual = this.digester.take().map(Digester::finish);
                match actual {
                    Some(actual) if actual != this.expected => {
                        Poll::Ready(Some(Err(Error::DigestMismatch {
                            url: this.url.clone(),
                            expected: this.expected.clone(),
                            actual,
                        })))
                    }
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}
