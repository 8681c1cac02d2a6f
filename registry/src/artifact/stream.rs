//! Bridges an async [`BlobStream`] to a blocking [`Read`] for tar/gzip work on a blocking thread.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::client::{self, BlobStream, ProgressFn};

/// Chunks in flight between the download task and the blocking reader (memory bound:
/// this many chunks of at most a few hundred KiB each).
const CHANNEL_CHUNKS: usize = 16;

/// Why the layer stream failed.
#[derive(Debug)]
pub(super) enum StreamFailure {
    /// The download or its verification failed (e.g. a digest mismatch).
    Client(client::Error),
    /// The deadline passed before the stream ended.
    Deadline,
}

impl std::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamFailure::Client(e) => e.fmt(f),
            StreamFailure::Deadline => f.write_str("timeout reached while downloading the layer"),
        }
    }
}

/// A blocking reader fed by [`pump`]. Keeps the first stream failure so callers can report the
/// client error (e.g. a digest mismatch) or the deadline rather than the IO error tar saw.
#[derive(Debug)]
pub(super) struct BlobReader {
    rx: mpsc::Receiver<Result<Bytes, StreamFailure>>,
    current: Bytes,
    error: Option<StreamFailure>,
    eof: bool,
}

impl BlobReader {
    /// The stream failure seen, if any.
    pub(super) fn take_error(&mut self) -> Option<StreamFailure> {
        self.error.take()
    }

    /// Reads to the end (so that the stream's final digest check runs) and discards the data.
    pub(super) fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.has_remaining() {
                let n = buf.len().min(self.current.remaining());
                self.current.copy_to_slice(&mut buf[..n]);
                return Ok(n);
            }
            if self.eof {
                return Ok(0);
            }
            if self.error.is_some() {
                return Err(io::Error::other("the blob download failed"));
            }
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    let message = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(message));
                }
                None => self.eof = true,
            }
        }
    }
}

/// Spawns a task that forwards `stream` into the returned reader, reporting cumulative bytes
/// to `progress`, and ending it with [`StreamFailure::Deadline`] when `deadline` passes first.
/// Must be called inside a tokio runtime; the reader must be used on a blocking thread
/// (`spawn_blocking`). The task ends when the stream ends, fails, passes the deadline or the
/// reader is dropped, so no download outlives its deadline even when the caller gave up.
pub(super) fn pump(
    mut stream: BlobStream,
    progress: Option<ProgressFn>,
    deadline: Option<tokio::time::Instant>,
) -> BlobReader {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let mut done = 0u64;
        loop {
            let next = match deadline {
                Some(at) => match tokio::time::timeout_at(at, stream.next()).await {
                    Ok(next) => next.map(|i| i.map_err(StreamFailure::Client)),
                    Err(_) => Some(Err(StreamFailure::Deadline)),
                },
                None => stream
                    .next()
                    .await
                    .map(|i| i.map_err(StreamFailure::Client)),
            };
            let Some(item) = next else { break };
            let failed = item.is_err();
            if let (Ok(chunk), Some(progress)) = (&item, &progress) {
                done += chunk.len() as u64;
                progress(done);
            }
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    BlobReader {
        rx,
        current: Bytes::new(),
        error: None,
        eof: false,
    }
}
