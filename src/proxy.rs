//! The hyper service: classify a request, decide the route, connect, relay, rescue errors.
//!
//! Flow of one request: origin-form -> admin surface; CONNECT -> [`tunnel`]; absolute-form ->
//! [`forward`] (or the upgrade path for WebSocket). Each hop of the decision is tried in order
//! while failures are in the connect phase; any error ends in [`crate::error::rescue`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;

use crate::access::{Access, Counted};
use crate::app::App;
use crate::body::{self, Body};
use crate::error::{rescue, ErrorKind, ProxyError};
use crate::headers;
use crate::relay::relay;
use crate::route::{Hop, ProxyKind};
use crate::target::{Scheme, Target};
use crate::upstream::{self, dial, io::BoxIo, Endpoint};

/// Entry point for every request on a client connection.
pub async fn handle(
    app: Arc<App>,
    client: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let is_connect = req.method() == Method::CONNECT;
    if !is_connect && req.uri().scheme().is_none() {
        if req.uri().authority().is_some() {
            return Ok(rescue(&ProxyError::bad_request(
                "authority-form targets are only valid with CONNECT",
            )));
        }
        return Ok(crate::admin::serve(&app, &req).await);
    }
    if !client_authorized(&app, req.headers()) {
        let err = ProxyError::new(
            ErrorKind::ClientAuthRequired,
            "this proxy requires Basic credentials (Proxy-Authorization)",
        );
        return Ok(rescue(&err));
    }
    if is_connect {
        Ok(tunnel(app, client, req).await)
    } else {
        Ok(forward(app, client, req).await)
    }
}

/// The admin-only port: the admin surface, and a refusal for anything that would be proxied.
pub async fn admin_only(app: &App, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::CONNECT
        && req.uri().scheme().is_none()
        && req.uri().authority().is_none()
    {
        return crate::admin::serve(app, &req).await;
    }
    rescue(&ProxyError::new(
        ErrorKind::Forbidden,
        "this is waypost's admin port (admin_listen); it does not proxy",
    ))
}

/// Sidecar mode: the client must present the configured Basic credentials (constant-time check).
fn client_authorized(app: &App, headers: &http::HeaderMap) -> bool {
    let Some(auth) = &app.cfg.client_auth else {
        return true;
    };
    let Some(value) = headers
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, b64)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", auth.username, auth.password);
    given.len() == expected.len() && bool::from(given.ct_eq(expected.as_bytes()))
}

fn fail(access: &Access, route: String, err: ProxyError) -> Response<Body> {
    let resp = rescue(&err);
    tracing::warn!(target = %access.target, route = %route, error = %err, "request failed");
    access.finish(resp.status().as_u16(), route, err.kind.code());
    resp
}

/// CONNECT: reach the target (directly or through a proxy), answer 200, relay bytes.
async fn tunnel(app: Arc<App>, client: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| req.uri().to_string());
    let target = match Target::from_connect(&authority) {
        Ok(t) => t,
        Err(e) => return rescue(&e),
    };
    let access = Access::new(
        client,
        "CONNECT",
        target.to_string(),
        "connect",
        app.metrics.clone(),
        app.cfg.log.access_log,
    );
    if !app.tls.port_allowed(target.port) {
        let e = ProxyError::new(
            ErrorKind::TargetNotAllowed,
            format!(
                "CONNECT to port {} is not in tls.connect_ports",
                target.port
            ),
        );
        return fail(&access, "-".into(), e);
    }
    if crate::intercept::wants(&app, &target) {
        return crate::intercept::start(app, client, target, req, access);
    }
    let decision = match app
        .decide(&target, || format!("https://{}/", target.host_header()))
        .await
    {
        Ok(d) => d,
        Err(e) => return fail(&access, "-".into(), e),
    };
    let mut last_err = None;
    let mut upstream: Option<(BoxIo, String)> = None;
    for (i, hop) in decision.hops.iter().enumerate() {
        let result = match hop {
            Hop::Direct => dial::stream(&app, &target.host, target.port, false).await,
            Hop::Proxy(p) if is_socks(p.kind) => {
                dial::stream_via(&app, &target.host, target.port, false, Some(p)).await
            }
            Hop::Proxy(p) => dial::connect_via_proxy(&app, p, &target).await,
        };
        match result {
            Ok(io) => {
                upstream = Some((io, hop.to_string()));
                break;
            }
            Err(e) if e.kind.is_connect_phase() && i + 1 < decision.hops.len() => {
                app.fail_over(hop, &e);
                last_err = Some(e);
            }
            Err(e) => {
                if e.kind.is_connect_phase() {
                    app.hop_failed(hop, &e);
                }
                return fail(&access, hop.to_string(), e);
            }
        }
    }
    let Some((io, route)) = upstream else {
        let e = last_err.unwrap_or_else(|| ProxyError::new(ErrorKind::Internal, "empty route"));
        return fail(&access, "-".into(), e);
    };
    access.finish(200, route, "ok");
    let on_upgrade = hyper::upgrade::on(req);
    let idle = app.cfg.timeouts.tunnel_idle;
    let metrics = app.metrics.clone();
    let app2 = app.clone();
    app.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                // Tunnels not intercepted: the ClientHello's SNI may be checked, never decrypted.
                let client_io = match crate::intercept::sni_gate(&app2, TokioIo::new(up)).await {
                    Ok(c) => c,
                    Err(why) => {
                        tracing::warn!(target = %access.target, reason = %why, "tunnel refused by the SNI rules");
                        access.finish(403, "-".into(), ErrorKind::TargetNotAllowed.code());
                        return;
                    }
                };
                metrics.tunnels_active.inc();
                let end = relay(client_io, io, idle).await;
                metrics.tunnels_active.dec();
                access.bytes_in.fetch_add(end.from_client, std::sync::atomic::Ordering::Relaxed);
                access.bytes_out.fetch_add(end.to_client, std::sync::atomic::Ordering::Relaxed);
                if end.idle_timeout {
                    tracing::debug!(target = %access.target, "tunnel closed after the idle timeout");
                }
            }
            Err(e) => tracing::debug!(error = %e, "client went away before the tunnel started"),
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::OK;
    resp
}

/// Where a hop sends an HTTP request, and the request-target form it needs.
fn endpoint_for(app: &App, hop: &Hop, target: &Target) -> Result<(Endpoint, bool), ProxyError> {
    match hop {
        Hop::Direct => Ok((
            Endpoint {
                host: target.host.clone(),
                port: target.port,
                tls: target.scheme == Scheme::Https,
                via: None,
                identity: None,
                label: Arc::from("direct"),
            },
            false,
        )),
        // https:// through an HTTP(S) proxy: a CONNECT tunnel with waypost's own TLS inside, so
        // the TLS policy applies to the origin (also for intercepted tunnels).
        Hop::Proxy(p) if target.scheme == Scheme::Https && !is_socks(p.kind) => Ok((
            Endpoint {
                host: target.host.clone(),
                port: target.port,
                tls: true,
                via: Some(p.clone()),
                identity: None,
                label: Arc::from(p.label()),
            },
            false,
        )),
        Hop::Proxy(p) => match p.kind {
            ProxyKind::Http | ProxyKind::Https => Ok((
                Endpoint {
                    host: p.host.clone(),
                    port: p.port,
                    tls: p.kind == ProxyKind::Https,
                    via: None,
                    // credentials go only to proxies the autologon policy allows
                    identity: app
                        .auth
                        .allows(&p.host.to_string())
                        .then(|| app.auth.identity()),
                    label: Arc::from(p.label()),
                },
                true,
            )),
            // Through SOCKS the connection reaches the origin itself: origin-form requests.
            ProxyKind::Socks4 | ProxyKind::Socks5 => Ok((
                Endpoint {
                    host: target.host.clone(),
                    port: target.port,
                    tls: target.scheme == Scheme::Https,
                    via: Some(p.clone()),
                    identity: None,
                    label: Arc::from(p.to_string()),
                },
                false,
            )),
        },
    }
}

/// Absolute-form HTTP (also used for requests decrypted from intercepted tunnels, whose URI
/// the interceptor rewrites to `https://host:port/path`).
pub(crate) async fn forward(
    app: Arc<App>,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let target = match Target::from_absolute(req.uri(), app.cfg.reject_userpwd_in_url) {
        Ok(t) => t,
        Err(e) => return rescue(&e),
    };
    let upgrade = headers::is_upgrade(req.headers());
    let kind = if upgrade { "upgrade" } else { "http" };
    let access = Access::new(
        client,
        req.method().as_str(),
        target.to_string(),
        kind,
        app.metrics.clone(),
        app.cfg.log.access_log,
    );
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    // hyper answers the client's `Expect: 100-continue` when the body is first polled, i.e. once
    // the upstream connection is ready; the upstream gets the body without waiting.
    parts.headers.remove(header::EXPECT);
    if app.cfg.via {
        headers::add_via(&mut parts.headers, parts.version);
    }
    if let Ok(h) = HeaderValue::from_str(&target.host_header()) {
        parts.headers.insert(header::HOST, h);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let started = tokio::time::Instant::now();
    let pac_url = || {
        format!(
            "{}://{}{}",
            target.scheme.as_str(),
            target.host_header(),
            path
        )
    };
    let decision = match app.decide(&target, pac_url).await {
        Ok(d) => d,
        Err(e) => return fail(&access, "-".into(), e),
    };
    let mut body = Some(Counted::new(body, access.clone(), true).boxed());
    let mut last_err = None;
    for (i, hop) in decision.hops.iter().enumerate() {
        let more = i + 1 < decision.hops.len();
        let attempt = async {
            let (ep, absolute) = endpoint_for(&app, hop, &target)?;
            let uri: Uri = if absolute {
                format!(
                    "{}://{}{}",
                    target.scheme.as_str(),
                    target.host_header(),
                    path
                )
                .parse()
            } else {
                path.parse()
            }
            .map_err(|e| ProxyError::bad_request(format!("cannot rebuild the request URI: {e}")))?;
            if upgrade {
                let io = match hop {
                    Hop::Proxy(p) if !is_socks(p.kind) => dial::to_proxy(&app, p).await?,
                    _ => dial::stream_via(&app, &ep.host, ep.port, ep.tls, ep.via.as_ref()).await?,
                };
                return Ok((
                    Conn::Upgrade(upstream::handshake(&app, io, true, &ep.label).await?),
                    ep,
                    uri,
                ));
            }
            Ok::<_, ProxyError>((
                Conn::Pooled(upstream::connection(&app, &ep).await?),
                ep,
                uri,
            ))
        };
        let (conn, ep, uri) = match attempt.await {
            Ok(c) => c,
            Err(e) if e.kind.is_connect_phase() && more => {
                app.fail_over(hop, &e);
                last_err = Some(e);
                continue;
            }
            Err(e) => {
                if e.kind.is_connect_phase() {
                    app.hop_failed(hop, &e);
                }
                return fail(&access, hop.to_string(), e);
            }
        };
        let conn = match conn {
            Conn::Pooled(pooled) if ep.identity.is_some() => {
                let pending = body.take().unwrap_or_else(body::empty);
                if !upstream::auth::replayable(&http_body::Body::size_hint(&pending)) {
                    // Too large to buffer: sent once; an authenticated pooled connection carries it.
                    body = Some(pending);
                    Conn::Pooled(pooled)
                } else {
                    let bytes = match pending.collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(e) => {
                            let e =
                                ProxyError::bad_request(format!("reading the request body: {e}"));
                            return fail(&access, hop.to_string(), e);
                        }
                    };
                    let replay = upstream::auth::Replay {
                        method: parts.method.clone(),
                        uri,
                        headers: std::mem::take(&mut parts.headers),
                        body: bytes,
                    };
                    let result = upstream::auth::send(&app, &ep, pooled, &replay).await;
                    app.metrics
                        .request_seconds
                        .with_label_values(&[kind])
                        .observe(started.elapsed().as_secs_f64());
                    return match result {
                        Ok(resp) => respond(&app, resp, &access, hop.to_string()),
                        Err(e) => fail(&access, hop.to_string(), e),
                    };
                }
            }
            other => other,
        };
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .version(Version::HTTP_11);
        if let Some(h) = builder.headers_mut() {
            // Only one attempt gets this far (failover happens before), so the headers move.
            *h = std::mem::take(&mut parts.headers);
        }
        let Ok(upstream_req) = builder.body(body.take().unwrap_or_else(body::empty)) else {
            return fail(
                &access,
                hop.to_string(),
                ProxyError::bad_request("cannot rebuild the request"),
            );
        };
        let result = match conn {
            Conn::Pooled(pooled) => upstream::send(&app, &ep, pooled, upstream_req).await,
            Conn::Upgrade(sender) => {
                send_upgrade(
                    &app,
                    &ep,
                    sender,
                    upstream_req,
                    client_upgrade,
                    access.clone(),
                )
                .await
            }
        };
        app.metrics
            .request_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        return match result {
            Ok(resp) => respond(&app, resp, &access, hop.to_string()),
            Err(e) => fail(&access, hop.to_string(), e),
        };
    }
    let e = last_err.unwrap_or_else(|| ProxyError::new(ErrorKind::Internal, "empty route"));
    fail(&access, "-".into(), e)
}

fn is_socks(kind: ProxyKind) -> bool {
    matches!(kind, ProxyKind::Socks4 | ProxyKind::Socks5)
}

enum Conn {
    Pooled(upstream::pool::Pooled),
    Upgrade(hyper::client::conn::http1::SendRequest<Body>),
}

fn respond(app: &App, resp: Response<Body>, access: &Arc<Access>, route: String) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if app.cfg.via {
        headers::add_via(&mut parts.headers, parts.version);
    }
    access.finish(parts.status.as_u16(), route, "ok");
    Response::from_parts(parts, Counted::new(body, access.clone(), false).boxed())
}

/// Sends an upgrade request on its own connection; on 101, relays the two upgraded streams.
async fn send_upgrade(
    app: &App,
    ep: &Endpoint,
    mut sender: hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    access: Arc<Access>,
) -> Result<Response<Body>, ProxyError> {
    let what = format!("upstream {}", ep.label);
    let timeout = app.cfg.timeouts.receive_response;
    let mut resp = tokio::time::timeout(timeout, sender.send_request(req))
        .await
        .map_err(|_| ProxyError::response_timeout(&what, timeout))?
        .map_err(|e| upstream::map_hyper_error(&e, &what))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let idle = app.cfg.timeouts.tunnel_idle;
        let metrics = app.metrics.clone();
        if let Some(client_upgrade) = client_upgrade {
            app.tracker.spawn(async move {
                let (c, u) = tokio::join!(client_upgrade, upstream_upgrade);
                if let (Ok(c), Ok(u)) = (c, u) {
                    metrics.tunnels_active.inc();
                    let end = relay(TokioIo::new(c), TokioIo::new(u), idle).await;
                    metrics.tunnels_active.dec();
                    access
                        .bytes_in
                        .fetch_add(end.from_client, std::sync::atomic::Ordering::Relaxed);
                    access
                        .bytes_out
                        .fetch_add(end.to_client, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    }
    Ok(resp.map(|b| b.map_err(Into::into).boxed()))
}
