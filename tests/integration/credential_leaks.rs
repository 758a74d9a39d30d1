//! Credentials going where they should not (issue 12): the `[socks]` password offered to any
//! SOCKS5 proxy, NTLM/Negotiate tokens to a proxy a WPAD script names by a plain host name,
//! and Basic over plain HTTP forced by an on-path attacker stripping the other schemes. Each
//! attack is tried against an in-test peer that records what it was sent.

use crate::support;

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use support::harness::{self, Origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use waypost::route::{Hop, ProxyAddr, Purpose};
use waypost::target::Target;

/// What one SOCKS session showed: the methods offered, and `user:password` if sent.
type Session = (Vec<u8>, Option<String>);

/// A SOCKS5 server (RFC 1928/1929) that records the methods offered and any username and
/// password, accepts either way, and answers the tunnelled request with a fixed HTTP reply.
struct FakeSocks {
    port: u16,
    /// (methods offered, username:password if sent), one per connection.
    seen: Arc<Mutex<Vec<Session>>>,
}

impl FakeSocks {
    async fn start() -> FakeSocks {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    if let Ok(entry) = socks_session(s).await {
                        record.lock().unwrap().push(entry);
                    }
                });
            }
        });
        FakeSocks { port, seen }
    }
}

async fn socks_session(mut s: TcpStream) -> std::io::Result<Session> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    s.read_exact(&mut methods).await?;
    let mut creds = None;
    if methods.contains(&2) {
        s.write_all(&[5, 2]).await?;
        let mut v = [0u8; 2];
        s.read_exact(&mut v).await?;
        let mut user = vec![0u8; v[1] as usize];
        s.read_exact(&mut user).await?;
        let mut plen = [0u8; 1];
        s.read_exact(&mut plen).await?;
        let mut pass = vec![0u8; plen[0] as usize];
        s.read_exact(&mut pass).await?;
        creds = Some(format!(
            "{}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&pass)
        ));
        s.write_all(&[1, 0]).await?;
    } else {
        s.write_all(&[5, 0]).await?;
    }
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    match req[3] {
        1 => drop(s.read_exact(&mut [0u8; 6]).await?),
        4 => drop(s.read_exact(&mut [0u8; 18]).await?),
        _ => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            let mut rest = vec![0u8; n[0] as usize + 2];
            s.read_exact(&mut rest).await?;
        }
    }
    s.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 80]).await?;
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).await?;
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nvia")
        .await?;
    Ok((methods, creds))
}

fn pac_file(dir: &tempfile::TempDir, answer: &str) -> String {
    let path = dir.path().join("proxy.pac");
    let script = format!("function FindProxyForURL(url, host) {{ return \"{answer}\"; }}");
    std::fs::write(&path, script).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn the_socks_password_goes_only_to_socks_proxies_the_autologon_policy_allows() {
    let socks = FakeSocks::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pac = pac_file(
        &dir,
        &format!("SOCKS5 evil.attacker.example:{}", socks.port),
    );
    let start = |allow: Vec<String>| {
        let pac = pac.clone();
        harness::start_proxy(move |c| {
            c.pac.source = pac.into();
            c.pac.cache_file = "none".into();
            c.socks.username = "sockuser".into();
            c.socks.password = "sockpass".into();
            c.auth.allow_proxies = allow;
            c.dns
                .hosts
                .insert("evil.attacker.example".into(), vec!["127.0.0.1".into()]);
        })
    };
    // a PAC-named proxy outside the policy: reached, but without the password
    let proxy = start(vec![]).await;
    let (status, _, body) = harness::get(proxy.addrs[0], "http://origin.example/").await;
    assert_eq!((status, body.as_str()), (200, "via"));
    let seen = socks.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        !seen[0].0.contains(&2),
        "username/password offered: {seen:?}"
    );
    assert_eq!(seen[0].1, None);
    // the same proxy, allow-listed: the password is used
    let proxy = start(vec!["evil.attacker.example".into()]).await;
    assert_eq!(
        harness::get(proxy.addrs[0], "http://origin.example/")
            .await
            .0,
        200
    );
    let seen = socks.seen.lock().unwrap().clone();
    assert_eq!(seen.last().unwrap().1.as_deref(), Some("sockuser:sockpass"));
}

#[tokio::test]
async fn a_wpad_script_cannot_make_a_plain_host_name_get_credentials() {
    let plan_for = |source: &str| {
        let cfg = harness::config(|c| {
            c.pac.source = source.into();
            c.pac.wpad_dhcp_timeout = "10ms".into();
            c.pac.wpad_dns_timeout = "10ms".into();
            c.pac.cache_file = "none".into();
            c.auth.user = Some("EXAMPLE\\alice".into());
            c.auth.password = Some(waypost_auth::credentials::SecretString::new("pw"));
        });
        let app = waypost::app::App::new(cfg).unwrap();
        let hop = Hop::Proxy(ProxyAddr::parse("http://evil:3128").unwrap());
        let target = Target::from_connect("intranet.example:443").unwrap();
        let speaker = waypost::app::script_speaker(source, "");
        let plan = app.plan(&hop, &target, Purpose::Tunnel, speaker);
        app.shutdown.cancel();
        plan.identity
    };
    let dir = tempfile::tempdir().unwrap();
    let explicit = pac_file(&dir, "PROXY evil:3128");
    assert!(
        plan_for(&explicit).is_some(),
        "an explicit script keeps the plain-name rule"
    );
    assert_eq!(
        plan_for("auto"),
        None,
        "a discovered script must not widen it"
    );
}

/// An HTTP proxy that offers only Basic (as if an attacker stripped Negotiate and NTLM from
/// the real proxy's 407) and records every `Proxy-Authorization` it receives.
async fn basic_only_proxy() -> (Origin, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let proxy = Origin::start(move |req: Request<Incoming>| {
        let record = record.clone();
        async move {
            let given = req
                .headers()
                .get("proxy-authorization")
                .map(|v| v.to_str().unwrap_or("?").to_string());
            let mut resp = Response::new(waypost::body::full("proxied"));
            match given {
                Some(v) => record.lock().unwrap().push(v),
                None => {
                    *resp.status_mut() = StatusCode::PROXY_AUTHENTICATION_REQUIRED;
                    resp.headers_mut().insert(
                        "proxy-authenticate",
                        "Basic realm=\"corp\"".parse().unwrap(),
                    );
                }
            }
            resp
        }
    })
    .await;
    (proxy, seen)
}

#[tokio::test]
async fn basic_over_plain_http_needs_an_explicit_scheme_and_the_407_says_why() {
    let (upstream, seen) = basic_only_proxy().await;
    let start = |scheme| {
        let url = format!("http://{}", upstream.addr);
        harness::start_proxy(move |c| {
            c.route.upstream = url;
            c.auth.scheme = scheme;
            c.auth.user = Some("EXAMPLE\\alice".into());
            c.auth.password = Some(waypost_auth::credentials::SecretString::new("hunter2"));
            c.auth.allow_proxies = vec!["127.0.0.1".into()];
        })
    };
    let proxy = start(waypost_auth::SchemeChoice::Auto).await;
    for url in ["http://origin.example/", "https://origin.example/"] {
        let (status, headers, body) = harness::get(proxy.addrs[0], url).await;
        assert_eq!(status, 407, "{url}: {body}");
        assert_eq!(
            headers["x-waypost-error"], "auth-basic-cleartext-refused",
            "{url}"
        );
        assert!(
            !body.contains("alice"),
            "the identity stays out of the answer: {body}"
        );
    }
    let reply = harness::raw(
        proxy.addrs[0],
        b"CONNECT origin.example:443 HTTP/1.1\r\nHost: origin.example:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 407"), "{reply}");
    assert!(
        reply.contains("x-waypost-error: auth-basic-cleartext-refused"),
        "{reply}"
    );
    assert!(!reply.contains("alice"), "{reply}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the password went out in clear"
    );
    // chosen explicitly, Basic is used
    let proxy = start(waypost_auth::SchemeChoice::Basic).await;
    let (status, _, body) = harness::get(proxy.addrs[0], "http://origin.example/").await;
    assert_eq!((status, body.as_str()), (200, "proxied"));
    assert_eq!(seen.lock().unwrap().len(), 1);
}
