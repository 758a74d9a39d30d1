//! The admin surface: origin-form requests to the proxy port (`/metrics`, `/healthz`).
//!
//! Anything else gets a short 400 (through [`crate::error::rescue`]) saying that this is a proxy
//! and how to use it.

use http::{header, HeaderValue, Request, Response};

use crate::app::App;
use crate::body::{self, Body};
use crate::error::{rescue, ProxyError};

pub async fn serve<B>(app: &App, req: &Request<B>) -> Response<Body> {
    match answer(app, req).await {
        Ok((ctype, text)) => {
            let mut resp = Response::new(body::full(text));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            resp
        }
        // refusals go through the one rescue, like every other
        Err(e) => rescue(&e),
    }
}

async fn answer<B>(app: &App, req: &Request<B>) -> Result<(&'static str, String), ProxyError> {
    const TEXT: &str = "text/plain; charset=utf-8";
    match req.uri().path() {
        "/explain" => {
            let query = req.uri().query().unwrap_or("");
            let url = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("url="))
                .map(percent_decode)
                .ok_or_else(|| ProxyError::bad_request("usage: /explain?url=http://host/path"))?;
            let v = crate::explain::report(app, &url)
                .await
                .map_err(ProxyError::bad_request)?;
            Ok(("application/json", format!("{v}\n")))
        }
        "/metrics" => {
            // expired bad-proxy marks leave the gauge now, not when someone asks /explain
            let _ = app.router.bad.snapshot();
            let loaded = app.metrics.pac_loaded_timestamp.get();
            if loaded > 0.0 {
                let age = crate::autoproxy::unix_now() - loaded;
                app.metrics.pac_script_age_seconds.set(age);
            }
            Ok((
                "text/plain; version=0.0.4; charset=utf-8",
                app.metrics.render(),
            ))
        }
        "/healthz" => Ok((TEXT, "ok\n".to_string())),
        _ => Err(ProxyError::bad_request(
            "waypost is a forward proxy: send absolute-form requests (GET http://host/path) or \
             CONNECT host:port, e.g. curl -x http://127.0.0.1:3128 http://example.com/. \
             Admin paths: /metrics, /healthz, /explain?url=URL.",
        )),
    }
}

/// Decodes `%XX` and `+` in a query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~:/".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}
