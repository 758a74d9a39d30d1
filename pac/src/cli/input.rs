//! Reading the list commands' input: a file path, or `-` for standard input. `test` and `diff`
//! read the whole input (so every bad line is reported before anything runs); `eval --urls`
//! reads line by line, so a pipe is answered while it is still being written. Bytes that are
//! not UTF-8 are replaced, not fatal. No parsing here ([`super::lines`] does that).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

/// How an input is named in messages (`stdin` for `-`).
pub(crate) fn display_name(path: &str) -> &str {
    if path == "-" {
        "stdin"
    } else {
        path
    }
}

async fn open(path: &str) -> Result<Box<dyn AsyncBufRead + Unpin + Send>, String> {
    if path == "-" {
        return Ok(Box::new(BufReader::new(tokio::io::stdin())));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Box::new(BufReader::new(file)))
}

/// The whole input as text.
pub(crate) async fn read_all(path: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    open(path)
        .await?
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("{}: {e}", display_name(path)))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One line read: its number (from 1) and text, or the read error that ended the input.
pub(crate) type NumberedLine = (usize, Result<String, String>);

/// Opens the input and reads it line by line on a task of its own; the lines arrive in order
/// on the returned channel, which closes at the end of the input.
pub(crate) async fn lines(path: &str) -> Result<mpsc::Receiver<NumberedLine>, String> {
    let mut reader = open(path).await?;
    let name = display_name(path).to_string();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut number = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            number += 1;
            let line = match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => return,
                Ok(_) => Ok(String::from_utf8_lossy(&buf).into_owned()),
                Err(e) => Err(format!("{name}: {e}")),
            };
            let failed = line.is_err();
            if tx.send((number, line)).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}
