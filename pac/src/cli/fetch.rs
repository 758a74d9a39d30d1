//! Fetching a PAC script over plain http:// for the CLI: one HTTP/1.1 GET on a tokio TCP
//! stream, status 200 required, chunked bodies decoded, size and time bounded. No TLS, no
//! redirects, no proxy (PAC fetches bypass the proxy, as browsers do).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Downloads `url` (http:// only).
pub(crate) async fn fetch(url: &str, limit: usize, timeout: Duration) -> Result<String, String> {
    tokio::time::timeout(timeout, get(url, limit))
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

async fn get(url: &str, limit: usize) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path = format!("{path}?{q}");
    }
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = tokio::net::TcpStream::connect((connect_host, port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/x-ns-proxy-autoconfig, */*\r\nConnection: close\r\nUser-Agent: waypost-pac\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut raw = Vec::new();
    let cap = (limit + 64 * 1024) as u64;
    (&mut stream)
        .take(cap + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{url}: malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "{url}: HTTP status {status} (PAC fetches need 200)"
        ));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| format!("{url}: malformed chunked body"))?;
    }
    if body.len() > limit {
        return Err(format!("{url}: script is over the {limit}-byte limit"));
    }
    Ok(decode(&body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// UTF-8 (BOM stripped) when valid, else Latin-1, as Chromium does without a charset.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk(b"4\r\nfunc\r\n3;x=y\r\ntio\r\n0\r\n\r\n").as_deref(),
            Some(&b"functio"[..])
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
    }

    #[test]
    fn latin1_scripts_are_decoded_and_utf8_boms_stripped() {
        assert_eq!(decode(b"\xEF\xBB\xBFvar a;"), "var a;");
        assert_eq!(decode(b"// caf\xE9"), "// café");
    }

    #[tokio::test]
    async fn scripts_are_fetched_from_a_loopback_http_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["200 OK", "404 Not Found"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                let body = "function FindProxyForURL(){return 'DIRECT';}";
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://{addr}/proxy.pac");
        let text = fetch(&url, 1 << 20, Duration::from_secs(5)).await.unwrap();
        assert!(text.contains("FindProxyForURL"));
        let err = fetch(&url, 1 << 20, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("404"), "{err}");
    }
}
