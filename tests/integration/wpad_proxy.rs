//! The "Done means" of autoproxy: a user who sets only `pac = "auto"` on a network with WPAD
//! gets the PAC's proxy choices, with failover, and `waypost explain` says why.
//!
//! Everything runs in a WPAD lab ([`WpadLab`]: dnsmasq for DHCP option 252 and DNS, busybox
//! httpd for `wpad.dat`, in a namespace of its own) and its client namespace, where the real
//! `waypost` binary, a squid and the python origin listen on the namespace's own 127.0.0.1
//! and curl is the client. The only settings besides `--pac auto` are test plumbing: no last
//! good copy on disk (`WAYPOST_PAC__CACHE_FILE=none`, so runs stay independent), loopback
//! not bypassed (the origin is on loopback), and a short refresh for the roaming test.
//!
//! Needs root (network namespaces), ip, dnsmasq, busybox, squid, python3 and curl; without
//! them a test fails naming what is missing. Every process and namespace is removed on drop,
//! also when a test fails (and by the peers' watchdog when the test process is killed).

use crate::support;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use support::netns::NsWaypost;
use support::peers::{free_port, require_program, Squid, WpadLab};
use waypost_testsupport::eventually_blocking;
use waypost_testsupport::metrics::find;

fn require_root() {
    let uid = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix("Uid:")
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
    });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests need root (network namespaces, DHCP on udp/68): run them as root"
    );
    for program in ["ip", "dnsmasq", "busybox", "curl"] {
        require_program(program);
    }
}

/// `waypost --pac auto --listen 127.0.0.1:PORT` in the lab's client namespace, with `env`;
/// killed on drop.
fn start_waypost(lab: &WpadLab, env: &[(&str, &str)]) -> NsWaypost {
    let port = free_port(); // free in the host namespace; the client namespace is empty
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec![
        ("WAYPOST_PAC__CACHE_FILE", "none"),
        ("WAYPOST_ROUTE__BYPASS_LOOPBACK", "false"),
    ];
    all.extend_from_slice(env);
    NsWaypost::spawn(
        &lab.client_ns,
        &addr,
        tempfile::tempdir().expect("tempdir"),
        "waypost.log",
        ["--pac", "auto", "--listen", &addr, "-v"],
        &all,
    )
}

fn via_squid(body: &str) -> bool {
    // the origin echoes each request header as "> Name: value"
    body.lines()
        .any(|l| l.to_ascii_lowercase().starts_with("> via:") && l.contains("squid"))
}

fn failover_pac(dead: u16, squid: &Squid) -> String {
    format!(
        "function FindProxyForURL(url, host) {{ return 'PROXY 127.0.0.1:{dead}; PROXY 127.0.0.1:{}; DIRECT'; }}\n",
        squid.port
    )
}

#[test]
fn with_only_pac_auto_a_dhcp_wpad_network_routes_through_the_pac_proxies_with_failover_and_explain_says_why(
) {
    require_root();
    let lab = WpadLab::start("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let squid = lab.squid_in_client();
    let origin = lab.origin_in_client();
    let dead = free_port();
    let pac = failover_pac(dead, &squid);
    lab.set_pac(&pac);
    let wp = start_waypost(&lab, &[]);
    let site = format!("http://127.0.0.1:{}", origin.port);

    let first = wp.explain_until(&format!("{site}/ready"), Duration::from_secs(20), |r| {
        !r["pac"].is_null()
    });
    assert_eq!(first["pac"]["method"], "dhcp", "{first}");
    assert_eq!(first["pac"]["source"], lab.wpad_url.as_str(), "{first}");

    let (status, body) = wp.curl(&format!("{site}/through-wpad"));
    assert_eq!(status, 200, "{body}");
    assert!(
        via_squid(&body),
        "the origin saw squid's Via: the dead first proxy was skipped within the request:\n{body}"
    );
    // squid logged the request (when its transaction ended, maybe after curl was done)
    eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains("/through-wpad"),
    );

    let r = wp.explain(&format!("{site}/why"));
    let dead_hop = format!("http://127.0.0.1:{dead}");
    let squid_hop = format!("http://127.0.0.1:{}", squid.port);
    assert_eq!(r["pac"]["method"], "dhcp", "{r}");
    assert_eq!(
        r["raw"],
        format!(
            "PROXY 127.0.0.1:{dead}; PROXY 127.0.0.1:{}; DIRECT",
            squid.port
        ),
        "{r}"
    );
    assert_eq!(
        r["proxies"],
        serde_json::json!([
            format!("PROXY 127.0.0.1:{dead}"),
            format!("PROXY 127.0.0.1:{}", squid.port),
            "DIRECT"
        ]),
        "{r}"
    );
    assert_eq!(r["bad_proxies"][0]["proxy"], dead_hop.as_str(), "{r}");
    assert_eq!(
        r["decision"],
        serde_json::json!([squid_hop, "DIRECT", dead_hop]),
        "the dead proxy is tried last while marked bad: {r}"
    );
    assert_eq!(r["hop_now"], squid_hop.as_str(), "{r}");

    let metrics = wp.curl(&format!("http://{}/metrics", wp.addr)).1;
    assert!(
        find(
            &metrics,
            "waypost_pac_fetches_total{outcome=\"ok\",source=\"dhcp\"}"
        )
        .is_some(),
        "{metrics}"
    );
    for series in [
        "waypost_route_failovers_total{reason=\"connect-refused\"}",
        "waypost_proxies_marked_bad",
    ] {
        assert_eq!(find(&metrics, series), Some(1.0), "{series}:\n{metrics}");
    }

    let (ok, text) = wp.explain_raw(&format!("{site}/why"), false);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("pac:        {} (via dhcp,", lab.wpad_url)),
        "{text}"
    );
    assert!(text.contains(&format!("marked bad: {dead_hop}")), "{text}");
}

#[test]
fn with_only_pac_auto_and_no_dhcp_option_252_the_script_is_found_by_dns_and_followed() {
    require_root();
    let lab =
        WpadLab::start_without_option_252("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let squid = lab.squid_in_client();
    let origin = lab.origin_in_client();
    let dead = free_port();
    lab.set_pac(&failover_pac(dead, &squid));
    let wp = start_waypost(&lab, &[]);
    let site = format!("http://127.0.0.1:{}", origin.port);

    let r = wp.explain_until(&format!("{site}/ready"), Duration::from_secs(20), |r| {
        !r["pac"].is_null()
    });
    assert_eq!(r["pac"]["method"], "dns", "{r}");
    assert_eq!(
        r["pac"]["source"], "http://wpad.corp.example.test/wpad.dat",
        "{r}"
    );
    let (status, body) = wp.curl(&format!("{site}/found-by-dns"));
    assert_eq!(status, 200, "{body}");
    assert!(via_squid(&body), "{body}");
    eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains("/found-by-dns"),
    );
    let log = lab.dnsmasq_log();
    assert!(
        log.contains("DHCPINFORM") && log.contains("query[A] wpad.corp.example.test"),
        "DHCP was asked first, then DNS:\n{log}"
    );
}

#[test]
fn when_the_wpad_script_changes_new_requests_follow_it_after_the_next_refresh() {
    require_root();
    let lab = WpadLab::start("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let squid = lab.squid_in_client();
    let origin = lab.origin_in_client();
    lab.set_pac(&format!(
        "function FindProxyForURL(u, h) {{ return 'PROXY 127.0.0.1:{}'; }}\n",
        squid.port
    ));
    let wp = start_waypost(&lab, &[("WAYPOST_PAC__REFRESH", "500ms")]);
    let site = format!("http://127.0.0.1:{}", origin.port);
    let squid_raw = format!("PROXY 127.0.0.1:{}", squid.port);

    let r = wp.explain_until(&format!("{site}/x"), Duration::from_secs(20), |r| {
        r["raw"] == squid_raw.as_str()
    });
    assert_eq!(r["pac"]["method"], "dhcp", "{r}");
    let (_, body) = wp.curl(&format!("{site}/office"));
    assert!(via_squid(&body), "through squid first: {body}");

    // the network now says: DIRECT for this origin, squid for everything else
    lab.set_pac(&format!(
        "function FindProxyForURL(u, h) {{ if (shExpMatch(u, '*/roamed*')) return 'DIRECT'; return 'PROXY 127.0.0.1:{}'; }}\n",
        squid.port
    ));
    let started = Instant::now();
    let r = wp.explain_until(&format!("{site}/roamed"), Duration::from_secs(10), |r| {
        r["raw"] == "DIRECT"
    });
    eprintln!("new script in use after {:?}", started.elapsed());
    assert_eq!(r["decision"], serde_json::json!(["DIRECT"]), "{r}");
    let (status, body) = wp.curl(&format!("{site}/roamed-request"));
    assert_eq!(status, 200, "{body}");
    assert!(!via_squid(&body), "the new script sends it DIRECT: {body}");
    assert!(
        !squid.access_log().contains("/roamed-request"),
        "{}",
        squid.access_log()
    );
    let (_, body) = wp.curl(&format!("{site}/still-proxied"));
    assert!(via_squid(&body), "{body}");
}

#[test]
fn a_network_change_makes_waypost_rediscover_and_follow_the_new_script_before_its_refresh_is_due() {
    require_root();
    let lab = WpadLab::start("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let squid = lab.squid_in_client();
    let origin = lab.origin_in_client();
    // the default refresh (30 min) never comes during the test: only the network change can
    let wp = start_waypost(&lab, &[]);
    let site = format!("http://127.0.0.1:{}", origin.port);
    let r = wp.explain_until(&format!("{site}/x"), Duration::from_secs(20), |r| {
        r["raw"] == "DIRECT"
    });
    assert_eq!(r["pac"]["method"], "dhcp", "{r}");
    let (_, body) = wp.curl(&format!("{site}/before-move"));
    assert!(!via_squid(&body), "DIRECT at first: {body}");

    lab.set_pac(&format!(
        "function FindProxyForURL(u, h) {{ return 'PROXY 127.0.0.1:{}'; }}\n",
        squid.port
    ));
    std::thread::sleep(Duration::from_millis(500));
    let r = wp.explain(&format!("{site}/x"));
    assert_eq!(
        r["raw"], "DIRECT",
        "no refresh without a network change: {r}"
    );
    // the laptop gets a new address: netlink tells waypost, which runs discovery again
    let (net, _) = lab.client_ip.rsplit_once('.').expect("dotted client ip");
    let out = Command::new("ip")
        .args(["-n", &lab.client_ns, "addr", "add", &format!("{net}.77/24")])
        .args(["dev", &lab.client_iface])
        .output()
        .expect("ip addr add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let squid_raw = format!("PROXY 127.0.0.1:{}", squid.port);
    let r = wp.explain_until(&format!("{site}/x"), Duration::from_secs(10), |r| {
        r["raw"] == squid_raw.as_str()
    });
    assert_eq!(r["pac"]["method"], "dhcp", "{r}");
    let (_, body) = wp.curl(&format!("{site}/after-move"));
    assert!(
        via_squid(&body),
        "the new script routes through squid: {body}"
    );
    assert!(
        wp.log().contains("network changed"),
        "the reload was caused by the network change:\n{}",
        wp.log()
    );
}

/// The laptop at the office with no configuration (issue 23): `--pac auto` finds the script by
/// DHCP, the script names a squid that accepts only Negotiate, and the user's `kinit` ticket is
/// all it takes: the network is proven by the realm's KDC (on the office network: the client
/// namespace's own loopback here), so Kerberos goes to the WPAD-named proxy. Prints the time
/// from exec to the first authenticated 200 (the goal is 1 s; measured, not asserted).
#[cfg(feature = "gssapi")]
#[test]
fn in_the_office_pac_auto_and_a_kinit_ticket_are_all_it_takes_to_pass_a_negotiate_only_squid() {
    use support::peers::{Kdc, PASSWORD, PROXY_HOST, USER};
    require_root();
    require_program("kinit");
    let lab = WpadLab::start("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let kdc = Kdc::start_in(&lab.client_ns);
    let squid = Squid::builder("negotiate")
        .kdc(&kdc)
        .netns(&lab.client_ns)
        .start();
    let origin = lab.origin_in_client();
    // the proxy by its full name, as a corporate script names it (the KDC has its key); the
    // office's hosts file maps it to the namespace's loopback, where squid listens
    lab.set_client_hosts(&format!("127.0.0.1 localhost\n127.0.0.1 {PROXY_HOST}\n"));
    lab.set_pac(&format!(
        "function FindProxyForURL(url, host) {{ return 'PROXY {PROXY_HOST}:{}'; }}\n",
        squid.port
    ));
    let dir = tempfile::tempdir().unwrap();
    let ccache = dir.path().join("ccache");
    assert!(kdc.kinit_into(&ccache, PASSWORD), "kinit in the office");
    let ccache = format!("FILE:{}", ccache.display());
    let krb5 = kdc.krb5_conf.display().to_string();
    let started = Instant::now();
    let wp = start_waypost(&lab, &[("KRB5_CONFIG", &krb5), ("KRB5CCNAME", &ccache)]);
    let site = format!("http://127.0.0.1:{}/office", origin.port);
    let (_, body) = first_200(&wp, &site, |_| true);
    eprintln!(
        "office: first authenticated 200 {:?} after exec (DHCP WPAD, KDC proof, Negotiate)",
        started.elapsed()
    );
    assert!(via_squid(&body), "{body}");
    let log = eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains("/office"),
    );
    assert!(
        log.contains(&format!("{USER}@EXAMPLE.TEST")),
        "squid names the user:\n{log}"
    );
    let r = wp.explain(&site);
    assert_eq!(r["pac"]["method"], "dhcp", "{r}");
    assert_eq!(r["credentials"][0]["sent"], "kerberos only", "{r}");
    let why = r["credentials"][0]["why"].as_str().unwrap_or("");
    assert!(
        why.contains("named by the network") && why.contains("proven"),
        "{r}"
    );
    assert!(wp.log().contains("network proven"), "{}", wp.log());

    // to the café, instantly: a new address, and no WPAD script there (the URL its DHCP names
    // answers 404): the office's script is dropped and requests go DIRECT
    let office_pac = fs::read_to_string(&lab.pac_file).unwrap();
    fs::remove_file(&lab.pac_file).unwrap();
    let (net, _) = lab.client_ip.rsplit_once('.').expect("dotted client ip");
    let cafe_ip = format!("{net}.88/24");
    let ip = |verb: &str| {
        let out = Command::new("ip")
            .args(["-n", &lab.client_ns, "addr", verb, &cafe_ip])
            .args(["dev", &lab.client_iface])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip("add");
    let (direct, _) = first_200(&wp, &format!("{site}/cafe"), |body| !via_squid(body));
    eprintln!("café: first DIRECT 200 {direct:?} after the move");
    // back in the office: the café's address goes, the script is served again
    fs::write(&lab.pac_file, office_pac).unwrap();
    ip("del");
    let (again, _) = first_200(&wp, &format!("{site}/back"), via_squid);
    eprintln!("office again: first authenticated 200 {again:?} after the move back");
    let log = eventually_blocking(
        Duration::from_secs(10),
        || squid.access_log(),
        |log| log.contains("/back"),
    );
    let user = format!("{USER}@");
    assert!(
        log.lines()
            .any(|l| l.contains("/back") && l.contains(&user)),
        "{log}"
    );
}

/// Polls `url` through `wp` until a 200 whose body satisfies `ok` (30 s at most); how long it
/// took, and the body.
fn first_200(wp: &NsWaypost, url: &str, ok: impl Fn(&str) -> bool) -> (Duration, String) {
    let started = Instant::now();
    loop {
        let got = waypost_testsupport::curl::Curl::in_netns(&wp.ns)
            .proxy(&format!("http://{}", wp.addr))
            .fetch(url);
        if got.status == 200 && ok(&got.body) {
            return (started.elapsed(), got.body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url}: no fitting 200 within 30 s (last {}): {}\n{}",
            got.status,
            got.body,
            wp.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A "proxy" for the hostile network: answers every request with a 407 offering Negotiate,
/// NTLM and Basic, appending every byte it receives to the file argv[2].
const RECORDER: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(64)
log = open(sys.argv[2], 'ab', 0)
page = b"attacker's page"
reply = (b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\n'
         b'Proxy-Authenticate: NTLM\r\nProxy-Authenticate: Basic realm="corp"\r\n'
         b'Content-Length: %d\r\n\r\n' % len(page)) + page
def serve(c):
    buf = b''
    while True:
        d = c.recv(65536)
        if not d:
            return
        log.write(d); buf += d
        while b'\r\n\r\n' in buf:
            _, buf = buf.split(b'\r\n\r\n', 1)
            c.sendall(reply)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Something answering as the KDC that cannot prove it: reads a request, answers garbage.
const IMPOSTOR_KDC: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept(); c.recv(65536); c.sendall(b'\x00\x00\x00\x05\x7e\x03\x02\x01\x05'); c.close()
"#;

/// The hostile network (issue 23): its DHCP and DNS claim the corporate domain, its WPAD
/// script names the corporate proxy's name (which its DNS maps to a recorder), and something
/// answers at the KDC's address. The laptop has a TGT and the proxy's service ticket from an
/// earlier office visit, and (second run) a password with the corporate suffix configured.
/// Nothing of any kind reaches the recorder, every request is answered with
/// `X-Waypost-Error: auth-untrusted-proxy` (time printed; the goal is 5 s), and the recorder
/// does see a Negotiate token when the user names it (the detector).
#[cfg(feature = "gssapi")]
#[test]
fn on_a_hostile_network_that_claims_the_corporate_names_no_credential_leaves() {
    use support::peers::{Kdc, PASSWORD, PROXY_HOST, USER};
    require_root();
    for program in ["kinit", "kvno", "python3"] {
        require_program(program);
    }
    // an earlier office visit: a TGT and the proxy's service ticket in the cache
    let kdc = Kdc::start();
    let dir = tempfile::tempdir().unwrap();
    let ccache_path = dir.path().join("ccache");
    assert!(kdc.kinit_into(&ccache_path, PASSWORD), "kinit");
    let ccache = format!("FILE:{}", ccache_path.display());
    let kvno = Command::new("kvno")
        .arg(format!("HTTP/{PROXY_HOST}"))
        .env("KRB5_CONFIG", &kdc.krb5_conf)
        .env("KRB5CCNAME", &ccache)
        .output()
        .unwrap();
    assert!(
        kvno.status.success(),
        "{}",
        String::from_utf8_lossy(&kvno.stderr)
    );

    let lab = WpadLab::start("function FindProxyForURL(u, h) { return 'DIRECT'; }\n");
    let (recorder_port, kdc_port) = (free_port(), free_port());
    let seen = dir.path().join("recorded");
    let _recorder = Daemon(
        lab.in_client("python3")
            .args(["-c", RECORDER, &recorder_port.to_string()])
            .arg(&seen)
            .spawn()
            .expect("recorder"),
    );
    let _impostor = Daemon(
        lab.in_client("python3")
            .args(["-c", IMPOSTOR_KDC, &kdc_port.to_string()])
            .spawn()
            .expect("impostor KDC"),
    );
    lab.set_client_hosts(&format!("127.0.0.1 localhost\n127.0.0.1 {PROXY_HOST}\n"));
    lab.set_pac(&format!(
        "function FindProxyForURL(url, host) {{ return 'PROXY {PROXY_HOST}:{recorder_port}'; }}\n"
    ));
    // the laptop's krb5.conf names the KDC at an address this network answers for
    let krb5 = dir.path().join("krb5.conf");
    let text = fs::read_to_string(&kdc.krb5_conf).unwrap();
    let hostile: String = text
        .lines()
        .map(
            |l| match l.trim_start().starts_with("kdc") && l.contains('=') {
                true => format!("    kdc = 127.0.0.1:{kdc_port}\n"),
                false => format!("{l}\n"),
            },
        )
        .collect();
    assert_ne!(hostile, text);
    fs::write(&krb5, hostile).unwrap();
    let krb5 = krb5.display().to_string();
    let origin = lab.origin_in_client();
    let site = format!("http://127.0.0.1:{}/hostile", origin.port);
    let password_config = [
        ("WAYPOST_AUTH__USER", format!("EXAMPLE\\{USER}")),
        ("WAYPOST_AUTH__PASSWORD", PASSWORD.to_string()),
        (
            "WAYPOST_AUTH__INTRANET_SUFFIXES",
            "example.test".to_string(),
        ),
    ];
    for (name, extra) in [
        ("sso", &password_config[..0]),
        ("password", &password_config[..]),
    ] {
        let mut env: Vec<(&str, &str)> = vec![("KRB5_CONFIG", &krb5), ("KRB5CCNAME", &ccache)];
        env.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let wp = start_waypost(&lab, &env);
        wp.explain_until(&site, Duration::from_secs(20), |r| !r["pac"].is_null());
        let started = Instant::now();
        let got = waypost_testsupport::curl::Curl::in_netns(&wp.ns)
            .proxy(&format!("http://{}", wp.addr))
            .args(["-D", "-"])
            .fetch(&site);
        eprintln!(
            "hostile ({name}): answered {} in {:?}",
            got.status,
            started.elapsed()
        );
        assert_eq!(got.status, 502, "{name}: {}\n{}", got.body, wp.log());
        assert!(
            got.body
                .to_ascii_lowercase()
                .contains("x-waypost-error: auth-untrusted-proxy"),
            "{name}: {}",
            got.body
        );
        assert!(
            !got.body.contains("attacker's page"),
            "{name}: {}",
            got.body
        );
        let recorded = fs::read_to_string(&seen).unwrap_or_default();
        assert!(
            recorded.contains("/hostile"),
            "{name}: the recorder was asked: {recorded}"
        );
        assert!(
            !recorded
                .to_ascii_lowercase()
                .contains("proxy-authorization"),
            "{name}: a credential reached the hostile proxy:\n{recorded}"
        );
        let r = wp.explain(&site);
        assert_eq!(r["credentials"][0]["sent"], "withheld", "{name}: {r}");
        assert!(
            wp.log().contains("network not proven"),
            "{name}: {}",
            wp.log()
        );
        drop(wp);
        fs::write(&seen, "").unwrap();
    }
    // the detector: named by the user, the same recorder receives the cached service ticket
    let addr = format!("127.0.0.1:{}", free_port());
    let upstream = format!("http://{PROXY_HOST}:{recorder_port}");
    let wp = NsWaypost::spawn(
        &lab.client_ns,
        &addr,
        tempfile::tempdir().unwrap(),
        "detector.log",
        [
            "--upstream",
            upstream.as_str(),
            "--listen",
            addr.as_str(),
            "-v",
        ],
        &[
            ("KRB5_CONFIG", krb5.as_str()),
            ("KRB5CCNAME", ccache.as_str()),
            ("WAYPOST_ROUTE__BYPASS_LOOPBACK", "false"),
            ("WAYPOST_PAC__CACHE_FILE", "none"),
            ("WAYPOST_AUTH__ALLOW_PROXIES", PROXY_HOST),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = waypost_testsupport::curl::Curl::in_netns(&wp.ns)
            .proxy(&format!("http://{}", wp.addr))
            .fetch(&format!("{site}-detector"));
        if got.status == 407 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "detector: {} {}\n{}",
            got.status,
            got.body,
            wp.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let recorded = fs::read_to_string(&seen)
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        recorded.contains("proxy-authorization: negotiate yii"),
        "the recorder catches a Kerberos token when the user names it:\n{recorded}\n{}",
        wp.log()
    );
}

/// A process started for a test; killed on drop.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
