//! The admin surface: origin-form requests to the proxy port and the admin listeners —
//! `/metrics`, `/healthz` (liveness), `/readyz` (readiness, with reasons: [`crate::ops::ready`]),
//! `/status` and `/status.json` ([`crate::ops::status`]), `/explain`, `/proxy.pac` and `/wpad.dat`
//! (a PAC pointing clients at this waypost: [`crate::ops::clientpac`]).
//!
//! Anything else gets a short 400 saying that this is a proxy and how to use it.
//!
//! Who may read it is not decided here: every admin request has passed
//! [`crate::admission::admit`] first (the address lists, the `Host` rule against DNS rebinding,
//! the `client_auth` credentials), which hands [`serve`] only whether the request carried the
//! credentials. `/healthz` says only "ok"; `/readyz` without the credentials says only ready or
//! not (liveness and readiness probes work without the password, the reasons need it);
//! `/proxy.pac` and `/wpad.dat` tell only what every client is told anyway.

use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::app::App;
use crate::body::{self, Body};

/// Answers an admin request that [`crate::admission::admit`] let through (`authenticated`: it
/// carried the `client_auth` credentials, or none are configured).
pub async fn serve<B>(app: &App, req: &Request<B>, authenticated: bool) -> Response<Body> {
    let (status, ctype, text) = match req.uri().path() {
        "/explain" => {
            let url = req.uri().query().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("url=")).map(percent_decode);
            match url {
                None => (StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", "usage: /explain?url=http://host/path\n".to_string()),
                Some(url) => match crate::ops::explain::report(app, &url).await {
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
            crate::ops::clientpac::CONTENT_TYPE,
            crate::ops::clientpac::for_request(app, req),
        ),
        "/readyz" => {
            let r = crate::ops::ready::check(app);
            let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let text = match (authenticated, r.ready) {
                (true, _) => r.render(),
                (false, true) => "ready\n".to_string(),
                (false, false) => "not ready (the reasons need the client_auth credentials)\n".to_string(),
            };
            (status, "text/plain; charset=utf-8", text)
        }
        "/status.json" => {
            let _ = app.router.bad.snapshot();
            (StatusCode::OK, "application/json", format!("{:#}\n", crate::ops::status::data(app)))
        }
        // a browser opening the admin root gets the status page; scripts keep the usage text
        "/" if prefers_html(req.headers().get(header::ACCEPT)) => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::ops::status::html(&crate::ops::status::data(app)),
        ),
        "/status" | "/status/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::ops::status::html(&crate::ops::status::data(app)),
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

/// Whether an `Accept` header asks for HTML before anything else a browser would (browsers send
/// `text/html,...`; curl sends `*/*`, scripts nothing or `text/plain`). `q=0` refuses a type.
pub fn prefers_html(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut best: Option<(f32, bool)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").map(str::trim))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let html = match media.as_str() {
            "text/html" | "application/xhtml+xml" => true,
            "*/*" | "text/*" | "text/plain" | "application/json" => false,
            _ => continue,
        };
        // the first of the highest q wins; a wildcard alone never means a browser
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, html));
        }
    }
    best.is_some_and(|(_, html)| html)
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

#[cfg(test)]
mod tests {
    use super::prefers_html;
    use http::HeaderValue;

    fn html(accept: &str) -> bool {
        prefers_html(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn browsers_asking_for_html_first_get_the_page_and_scripts_get_text() {
        // Chromium / Firefox
        assert!(html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        ));
        assert!(html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        // curl, wget, Prometheus, a script asking for text or JSON, nothing at all
        assert!(!html("*/*"));
        assert!(!html("text/plain"));
        assert!(!html("application/json, text/html;q=0.5"));
        assert!(!html("text/html;q=0"));
        assert!(!prefers_html(None));
    }
}
