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

/// Reads one frame body (blocking; the worker side).
pub(crate) fn read_blocking(input: &mut impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes over {max}"
        )));
    }
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

/// Reads one frame body (the proxy side).
pub(crate) async fn read_async(
    input: &mut (impl tokio::io::AsyncRead + Unpin),
    max: usize,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    input.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes over {max}"
        )));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).await?;
    Ok(body)
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
}
