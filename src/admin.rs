//! The admin surface: origin-form requests to the proxy port (`/metrics`, `/healthz`).
//!
//! Anything else gets a short 400 saying that this is a proxy and how to use it.

use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::app::App;
use crate::body::{self, Body};

pub fn serve<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let (status, ctype, text) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".to_string()),
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", app.metrics.render()),
        _ => (
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "waypost is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT \
             host:port, e.g. curl -x http://127.0.0.1:3128 http://example.com/. Admin paths: /metrics, /healthz.\n"
                .to_string(),
        ),
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
