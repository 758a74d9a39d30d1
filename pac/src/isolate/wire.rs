//! The worker protocol: length-prefixed frames (4-byte little-endian length, then one JSON
//! message) on the child's stdin (proxy -> worker) and stdout (worker -> proxy).
//!
//! A session: `Init` (options + script) -> `Loaded`; then any number of `Eval` -> `Answer`,
//! `Network` (no reply: new local addresses after a network change) or
//! `Load` -> `Loaded`. While it loads or evaluates, the worker may send `Resolve` (answered by
//! `Dns`: the proxy resolves with its own resolver) and `Alert` (logged by the proxy). Frames
//! from the worker are untrusted: their size is capped and anything unexpected ends the worker.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::PacError;

/// Largest frame the proxy accepts from a worker (results, alerts and errors are small).
pub(crate) const MAX_FROM_WORKER: usize = 1 << 20;
/// Largest frame a worker accepts (a script, JSON-escaped).
pub(crate) const MAX_TO_WORKER: usize = 64 << 20;

/// The engine options a worker needs (the rest stay in the proxy).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerOptions {
    pub memory_limit: u64,
    pub load_timeout: Duration,
    pub call_timeout: Duration,
    pub max_result_bytes: usize,
    pub loop_iteration_limit: u64,
    pub instruction_budget: u64,
    pub recursion_limit: usize,
    pub dns_budget: u32,
    pub dns_cache_ttl: Duration,
    pub dns_negative_ttl: Duration,
    pub dns_cache_size: usize,
    pub my_ip: Vec<IpAddr>,
    pub dns_fixed: HashMap<String, Vec<IpAddr>>,
    pub fixed_now_ms: Option<i64>,
    pub time_zone: Option<String>,
    pub alert_max_bytes: usize,
    pub alert_max_per_call: u32,
    pub alert_max_per_second: u32,
}

/// Proxy -> worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    Init {
        options: Box<WorkerOptions>,
        script: String,
        generation: u64,
    },
    Load {
        script: String,
        generation: u64,
    },
    Eval {
        url: String,
        host: String,
    },
    /// The answer to `Resolve`: addresses, or `None` (not resolvable).
    Dns(Option<Vec<IpAddr>>),
    /// The network changed: the local addresses now (no reply; cached DNS answers are
    /// forgotten too).
    Network {
        my_ip: Vec<IpAddr>,
    },
}

/// Worker -> proxy.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    Loaded(Result<(), PacError>),
    Answer(Result<String, PacError>),
    Resolve(String),
    Alert(String),
}

/// Encodes one frame.
pub(crate) fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut frame = vec![0u8; 4];
    // serialising these plain enums into a Vec cannot fail (no maps with non-string keys)
    if serde_json::to_writer(&mut frame, message).is_err() {
        frame.truncate(4);
    }
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame
}

/// Decodes a frame body.
pub(crate) fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad frame: {e}"))
}

/// The body length a frame's 4-byte prefix announces, refused over `max` (before any of the
/// body is read).
fn body_len(prefix: [u8; 4], max: usize) -> std::io::Result<usize> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes over {max}"
        )));
    }
    Ok(len)
}

/// Reads one frame body (blocking; the worker side).
pub(crate) fn read_blocking(input: &mut impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = body_len(len, max)?;
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(body)
}

/// Writes one frame (blocking; the worker side).
pub(crate) fn write_blocking<T: Serialize>(
    output: &mut impl Write,
    message: &T,
) -> std::io::Result<()> {
    output.write_all(&encode(message))?;
    output.flush()
}

/// The proxy's end of a worker's stdout: frames come through the runtime's readiness as usual,
/// or, while a lone call waits hot ([`crate::hot`]), by reading the pipe directly: the
/// runtime learns that a pipe is readable only when its I/O driver is polled, which a parked
/// thread does only after its wake-up.
pub(crate) struct FrameReader<R> {
    pipe: R,
    /// Bytes read and not yet taken (the start of the next frames).
    buf: Vec<u8>,
    /// Where a direct read lands before it joins `buf` (zeroed once, not per attempt).
    scratch: Box<[u8]>,
}

/// How much one read asks for (a frame's length and body usually come in one).
const CHUNK: usize = 4096;

impl<R: tokio::io::AsyncRead + std::os::fd::AsFd + Unpin> FrameReader<R> {
    pub fn new(pipe: R) -> FrameReader<R> {
        FrameReader {
            pipe,
            buf: Vec::new(),
            scratch: vec![0; CHUNK].into_boxed_slice(),
        }
    }

    /// Reads one frame body of at most `max` bytes, polling the pipe for up to `spin` before
    /// it waits for the runtime. The pipe must be non-blocking (tokio's pipes are).
    pub async fn next(&mut self, max: usize, spin: Duration) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut turns = crate::hot::Spin::new(spin);
        loop {
            if let Some(body) = self.take(max)? {
                return Ok(body);
            }
            let read = if turns.going() {
                match nix::unistd::read(self.pipe.as_fd(), &mut self.scratch) {
                    Ok(n) => {
                        self.buf.extend_from_slice(&self.scratch[..n]);
                        n
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                        turns.pause().await;
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                }
            } else {
                self.buf.reserve(CHUNK);
                self.pipe.read_buf(&mut self.buf).await?
            };
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The first whole frame in the buffer, if there is one.
    fn take(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let Some(&[a, b, c, d]) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = body_len([a, b, c, d], max)?;
        let Some(body) = self.buf.get(4..4 + len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.buf.drain(..4 + len);
        if self.buf.is_empty() && self.buf.capacity() > 16 * CHUNK {
            // a large frame (a long alert) is not kept for the process's life
            self.buf = Vec::new();
        }
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_an_oversized_one_is_refused() {
        let frame = encode(&FromWorker::Answer(Err(PacError::Timeout(
            Duration::from_millis(5),
        ))));
        let body = read_blocking(&mut &frame[..], MAX_FROM_WORKER).unwrap();
        let back: FromWorker = decode(&body).unwrap();
        assert!(matches!(
            back,
            FromWorker::Answer(Err(PacError::Timeout(d))) if d == Duration::from_millis(5)
        ));
        let mut big = (MAX_FROM_WORKER as u32 + 1).to_le_bytes().to_vec();
        big.extend_from_slice(b"{}");
        assert!(read_blocking(&mut &big[..], MAX_FROM_WORKER).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_split_across_reads_or_sharing_one_are_read_whole_hot_or_parked() {
        use tokio::io::AsyncWriteExt;
        let (mut worker, proxy) = tokio::net::UnixStream::pair().unwrap();
        let mut reader = FrameReader::new(proxy);
        let first = encode(&FromWorker::Alert("one".into()));
        let second = encode(&FromWorker::Answer(Ok("PROXY a:1".into())));
        for spin in [crate::hot::SPIN, Duration::ZERO] {
            // a frame in three pieces, the last one sent after the reader has been waiting
            worker.write_all(&first[..2]).await.unwrap();
            worker.write_all(&first[2..6]).await.unwrap();
            let rest = first[6..].to_vec();
            let mut sender = worker;
            let late = tokio::spawn(async move {
                tokio::task::yield_now().await;
                sender.write_all(&rest).await.unwrap();
                sender
            });
            let body = reader.next(MAX_FROM_WORKER, spin).await.unwrap();
            assert!(matches!(decode(&body).unwrap(), FromWorker::Alert(a) if a == "one"));
            worker = late.await.unwrap();
            // two frames in one write: the second is kept for the next call
            let mut both = second.clone();
            both.extend_from_slice(&first);
            worker.write_all(&both).await.unwrap();
            let body = reader.next(MAX_FROM_WORKER, spin).await.unwrap();
            assert!(
                matches!(decode(&body).unwrap(), FromWorker::Answer(Ok(r)) if r == "PROXY a:1")
            );
            let body = reader.next(MAX_FROM_WORKER, spin).await.unwrap();
            assert!(matches!(decode(&body).unwrap(), FromWorker::Alert(_)));
        }
        // an oversized length is refused before its body is read; a closed pipe is an error
        worker.write_all(&(64u32).to_le_bytes()).await.unwrap();
        assert!(reader.next(16, crate::hot::SPIN).await.is_err());
        let (worker, proxy) = tokio::net::UnixStream::pair().unwrap();
        let mut reader = FrameReader::new(proxy);
        drop(worker);
        let eof = reader
            .next(MAX_FROM_WORKER, Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(eof.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
