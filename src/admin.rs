//! The admin surface: origin-form requests to the proxy port and the admin listeners —
//! `/metrics`, `/healthz` (liveness), `/readyz` (readiness, with reasons: [`crate::ready`]),
//! `/status` and `/status.json` ([`crate::status`]), `/explain`, `/proxy.pac` and `/wpad.dat`
//! (a PAC pointing clients at this waypost: [`crate::clientpac`]).
//!
//! Anything else gets a short 400 saying that this is a proxy and how to use it. Like the rest
//! of the proxy port it serves only clients the listener admits (loopback, or the `allow` list).

use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::app::App;
use crate::body::{self, Body};

pub async fn serve<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let (status, ctype, text) = match req.uri().path() {
        "/explain" => {
            let url = req.uri().query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("url=")).map(percent_decode);
            match url {
                None => (StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", "usage: /explain?url=http://host/path\n".to_string()),
                Some(url) => match crate::explain::report(app, &url).await {
                    Ok(v) => (StatusCode::OK, "application/json", format!("{v}\n")),
                    Err(e) => (StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", format!("{e}\n")),
                },
            }
        }
        "/metrics" => {
            // expired bad-proxy marks leave the gauge now, not when someone asks /explain
            let _ = app.router.bad.snapshot();
            if app.metrics.pac_loaded_timestamp.get() > 0.0 {
                app.metrics.pac_script_age_seconds.set(crate::autoproxy::unix_now() - app.metrics.pac_loaded_timestamp.get());
            }
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", app.metrics.render())
        }
        "/healthz" => (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".to_string()),
        "/proxy.pac" | "/wpad.dat" => (
            StatusCode::OK,
            crate::clientpac::CONTENT_TYPE,
            crate::clientpac::for_request(app, req),
        ),
        "/readyz" => {
            let r = crate::ready::check(app);
            let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, "text/plain; charset=utf-8", r.render())
        }
        "/status.json" => {
            let _ = app.router.bad.snapshot();
            (StatusCode::OK, "application/json", format!("{:#}\n", crate::status::data(app)))
        }
        "/status" | "/status/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status::html(&crate::status::data(app)),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "waypost is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT \
             host:port, e.g. curl -x http://127.0.0.1:3128 http://example.com/. Admin paths: /status, /status.json, /metrics, /healthz, /readyz, /explain?url=URL, /proxy.pac.\n"
                .to_string(),
        ),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if ctype.starts_with("text/html") {
        // the page loads nothing and runs nothing: say so, so a browser enforces it
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        );
    }
    resp
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
