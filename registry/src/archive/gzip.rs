//! A deterministic, multi-threaded gzip writer (the pigz technique).
//!
//! The input is cut into fixed [`BLOCK_BYTES`] blocks. Each block is deflated independently at
//! the default level (6) as raw deflate, primed with the previous 32 KiB of input as its
//! dictionary (so the ratio stays close to single-stream gzip) and ended with a sync flush; the
//! last block ends the stream. The blocks are concatenated into one gzip member with the header
//! Go and `flate2` write (`1f 8b 08 00 00000000 00 ff`) and the CRC-32/size trailer.
//!
//! The output depends only on the input bytes (block boundaries are fixed offsets), never on the
//! number of threads or on how the writes were split, so archives stay reproducible.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input block size: 1 MiB.
pub(crate) const BLOCK_BYTES: usize = 1 << 20;
/// Deflate window: the dictionary carried from one block to the next.
const WINDOW_BYTES: usize = 32 * 1024;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 255 (unknown).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The deflate of one block.
fn deflate_block(dictionary: &[u8], input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut compress = Compress::new(Compression::default(), false);
    if !dictionary.is_empty() {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 1024);
    loop {
        let consumed = usize::try_from(compress.total_in()).unwrap_or(usize::MAX);
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = usize::try_from(compress.total_in()).unwrap_or(usize::MAX) == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            _ if done_input && !last && out.len() < out.capacity() => return Ok(out),
            _ => out.reserve(out.capacity().max(64 * 1024)),
        }
    }
}

/// A gzip writer that compresses blocks of its input on several threads. Call
/// [`finish`](Self::finish) to write the end of the stream and get the inner writer back.
#[derive(Debug)]
pub(crate) struct ParallelGzWriter<W: Write> {
    inner: W,
    threads: usize,
    /// Blocks waiting to be compressed (all full except possibly the last, still filling).
    pending: Vec<Vec<u8>>,
    /// The last [`WINDOW_BYTES`] of the input before `pending[0]`.
    window: Vec<u8>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGzWriter<W> {
    /// A writer compressing on up to `threads` threads (at least 1).
    pub(crate) fn new(inner: W, threads: usize) -> Self {
        Self {
            inner,
            threads: threads.max(1),
            pending: Vec::new(),
            window: Vec::new(),
            crc: Crc::new(),
            header_written: false,
        }
    }

    /// Compresses the full blocks in `pending` (all but a trailing partial block unless `all`).
    fn compress_pending(&mut self, all: bool) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&HEADER)?;
            self.header_written = true;
        }
        let count = if all {
            self.pending.len()
        } else {
            self.pending
                .iter()
                .take_while(|b| b.len() == BLOCK_BYTES)
                .count()
        };
        if count == 0 {
            return Ok(());
        }
        let blocks: Vec<Vec<u8>> = self.pending.drain(..count).collect();
        let last_index = if all && self.pending.is_empty() {
            Some(blocks.len() - 1)
        } else {
            None
        };
        let mut dictionaries = Vec::with_capacity(blocks.len());
        let mut window = std::mem::take(&mut self.window);
        for block in &blocks {
            dictionaries.push(window.clone());
            window = tail(&window, block);
        }
        self.window = window;
        let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = blocks
                .iter()
                .zip(&dictionaries)
                .enumerate()
                .map(|(i, (block, dict))| {
                    scope.spawn(move || deflate_block(dict, block, Some(i) == last_index))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))
                })
                .collect()
        });
        for out in outputs {
            self.inner.write_all(&out?)?;
        }
        Ok(())
    }

    /// Writes the remaining data, the end of the deflate stream and the gzip trailer; returns the
    /// inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.pending.is_empty() {
            self.pending.push(Vec::new());
        }
        self.compress_pending(true)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&trailer)?;
        Ok(self.inner)
    }
}

/// The last [`WINDOW_BYTES`] of `previous` followed by `block`.
fn tail(previous: &[u8], block: &[u8]) -> Vec<u8> {
    if block.len() >= WINDOW_BYTES {
        return block[block.len() - WINDOW_BYTES..].to_vec();
    }
    let keep = WINDOW_BYTES - block.len();
    let start = previous.len().saturating_sub(keep);
    let mut out = previous[start..].to_vec();
    out.extend_from_slice(block);
    out
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            match self.pending.last_mut() {
                Some(block) if block.len() < BLOCK_BYTES => {
                    let n = rest.len().min(BLOCK_BYTES - block.len());
                    block.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                _ => {
                    if self.pending.len() >= self.threads {
                        self.compress_pending(false)?;
                    }
                    self.pending.push(Vec::with_capacity(BLOCK_BYTES));
                }
            }
        }
        Ok(buf.len())
    }

    /// Flushes the inner writer only: pending blocks are compressed in batches so that the
    /// output does not depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn compress(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut w = ParallelGzWriter::new(Vec::new(), threads);
        for chunk in data.chunks(write_size.max(1)) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x: u32 = 12345;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b"kind: Deployment\n"[i % 17]
                }
            })
            .collect()
    }

    #[test]
    fn output_is_valid_gzip_and_independent_of_threads_and_write_sizes() {
        for len in [
            0,
            1,
            1000,
            BLOCK_BYTES - 1,
            BLOCK_BYTES,
            BLOCK_BYTES + 1,
            3 * BLOCK_BYTES + 12_345,
        ] {
            let data = sample(len);
            let one = compress(&data, 1, 4096);
            assert_eq!(&one[..10], &HEADER);
            for (threads, write_size) in [(2, 100_000), (4, 7), (8, BLOCK_BYTES * 2)] {
                if len > 200_000 && write_size == 7 {
                    continue;
                }
                assert_eq!(
                    compress(&data, threads, write_size),
                    one,
                    "len {len} threads {threads}"
                );
            }
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(one.as_slice())
                .read_to_end(&mut decoded)
                .unwrap();
            assert_eq!(decoded, data, "len {len}");
        }
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_close_to_single_stream() {
        let data = sample(4 * BLOCK_BYTES);
        let parallel = compress(&data, 4, 65536).len();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            parallel < single + single / 50,
            "parallel {parallel} vs single {single}"
        );
    }
}
