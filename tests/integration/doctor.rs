//! `waypost doctor` against real peers (squid in basic and negotiate modes, an MIT KDC): all
//! green with correct credentials, and the failing line names the fix with a wrong password, a
//! missing ticket, an unreachable proxy and a broken PAC. Also against a running instance.
//!
//! The doctor runs as the real binary; the Kerberos environment (`KRB5_CONFIG`) is given to it
//! alone, so these tests leave the test process's environment untouched.

use crate::support;

use std::path::Path;

use support::harness::{self, Origin};
use support::peers::{free_port, Kdc, Squid, PASSWORD, USER};

struct Doctor {
    code: i32,
    text: String,
    json: serde_json::Value,
}

impl Doctor {
    /// The verdict whose check starts with `check`.
    fn check(&self, check: &str) -> &serde_json::Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"].as_str().unwrap_or("").starts_with(check))
            .unwrap_or_else(|| panic!("no {check} check in:\n{}", self.text))
    }
}

async fn doctor(config: &Path, extra: &[&str], env: &[(String, String)]) -> Doctor {
    let run = |json: bool| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_waypost"));
        c.arg("doctor").arg("--config").arg(config).args(extra);
        if json {
            c.arg("--json");
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.env_remove("KRB5CCNAME");
        c.output()
    };
    let (text, json) = tokio::join!(run(false), run(true));
    let (text, json) = (text.unwrap(), json.unwrap());
    let text_out = format!(
        "{}{}",
        String::from_utf8_lossy(&text.stdout),
        String::from_utf8_lossy(&text.stderr)
    );
    assert_eq!(text.status.code(), json.status.code(), "{text_out}");
    let parsed = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&json.stdout),
            String::from_utf8_lossy(&json.stderr)
        )
    });
    assert!(
        !text_out.contains(PASSWORD),
        "the doctor printed the password:\n{text_out}"
    );
    Doctor {
        code: text.status.code().unwrap_or(-1),
        text: text_out,
        json: parsed,
    }
}

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("waypost.toml");
    std::fs::write(&path, format!("listen = [\"127.0.0.1:0\"]\n{body}")).unwrap();
    path
}

fn basic_config(squid_port: u16, password: &str) -> String {
    format!(
        "[route]\nupstream = \"http://localhost:{squid_port}\"\nbypass_loopback = false\n\
         [auth]\nscheme = \"basic\"\nuser = \"{USER}\"\npassword = \"{password}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_all_green_with_the_right_password_and_names_the_fix_for_a_wrong_one() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("basic"))
        .await
        .unwrap();
    let origin = Origin::echo().await;
    let url = origin.url("/doctor");
    let dir = tempfile::tempdir().unwrap();

    let cfg = write_config(dir.path(), &basic_config(squid.port, PASSWORD));
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 0, "{}", d.text);
    assert!(!d.text.contains("FAIL"), "{}", d.text);
    assert!(d.text.contains("verdict: healthy"), "{}", d.text);
    let auth = d.check("auth localhost:");
    assert_eq!(auth["status"], "ok", "{}", d.text);
    assert!(
        auth["detail"].as_str().unwrap().contains("Basic")
            && auth["detail"].as_str().unwrap().contains(USER),
        "{}",
        d.text
    );
    assert_eq!(d.check("proxy localhost:")["status"], "ok");

    let cfg = write_config(dir.path(), &basic_config(squid.port, "Wrong-Pass-9"));
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let auth = d.check("auth localhost:");
    assert_eq!(auth["status"], "fail", "{}", d.text);
    assert!(
        auth["fix"]
            .as_str()
            .unwrap()
            .contains("rejected the password of"),
        "{}",
        d.text
    );
    assert!(!d.text.contains("Wrong-Pass-9"), "{}", d.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_an_unreachable_proxy_and_a_broken_pac() {
    let origin = Origin::echo().await;
    let url = origin.url("/doctor");
    let dir = tempfile::tempdir().unwrap();
    let dead = free_port();
    let cfg = write_config(
        dir.path(),
        &format!("[route]\nupstream = \"http://localhost:{dead}\"\nbypass_loopback = false\n"),
    );
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let proxy = d.check(&format!("proxy localhost:{dead}"));
    assert_eq!(proxy["status"], "fail", "{}", d.text);
    assert!(
        proxy["detail"].as_str().unwrap().contains("unreachable"),
        "{}",
        d.text
    );
    assert!(
        proxy["fix"]
            .as_str()
            .unwrap()
            .contains("check the proxy's host and port"),
        "{}",
        d.text
    );

    let pac = dir.path().join("broken.pac");
    std::fs::write(
        &pac,
        "function FindProxyForURL(url, host) {\n  return \"DIRECT\"\n",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[pac]\nsource = \"{}\"\nfirst_load_wait = \"5s\"\n",
            pac.display()
        ),
    );
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let v = d.check("pac");
    assert_eq!(v["status"], "fail", "{}", d.text);
    assert!(
        v["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("waypost pac check {}", pac.display())),
        "{}",
        d.text
    );

    std::fs::write(&pac, format!("function FindProxyForURL(url, host) {{ return \"PROXY localhost:{dead}; DIRECT\"; }}\n")).unwrap();
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    let v = d.check("pac");
    assert_eq!(v["status"], "ok", "{}", d.text);
    assert!(
        v["detail"].as_str().unwrap().contains("found by file"),
        "{}",
        d.text
    );
    assert_eq!(
        d.check(&format!("proxy localhost:{dead}"))["status"],
        "fail",
        "{}",
        d.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_asks_the_running_instance_and_says_when_nothing_answers() {
    let proxy = harness::start_proxy(|_| {}).await;
    let origin = Origin::echo().await;
    let url = origin.url("/doctor");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let admin = proxy.addrs[0].to_string();
    let d = doctor(&cfg, &["--admin", &admin, "--url", &url], &[]).await;
    assert_eq!(d.code, 0, "{}", d.text);
    let v = d.check("listening");
    assert_eq!(v["status"], "ok", "{}", d.text);
    assert!(
        v["detail"].as_str().unwrap().contains("is ready"),
        "{}",
        d.text
    );

    let closed = format!("127.0.0.1:{}", free_port());
    let d = doctor(&cfg, &["--admin", &closed, "--url", &url], &[]).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let v = d.check("listening");
    assert_eq!(v["status"], "fail", "{}", d.text);
    assert!(
        v["fix"].as_str().unwrap().contains("waypost run --config"),
        "{}",
        d.text
    );
}

#[cfg(feature = "gssapi")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_kerberos_ticket_and_spn_and_names_kinit_when_the_ticket_is_missing() {
    let kdc = tokio::task::spawn_blocking(Kdc::start).await.unwrap();
    let squid = {
        let kdc_ref = &kdc;
        Squid::builder("negotiate").kdc(kdc_ref).start()
    };
    let ccache = kdc.kinit();
    let env: Vec<(String, String)> = kdc
        .env()
        .into_iter()
        .filter(|(k, _)| k != "KRB5CCNAME")
        .collect();
    let origin = Origin::echo().await;
    let url = origin.url("/doctor");
    let dir = tempfile::tempdir().unwrap();
    let config = |cache: &Path| {
        format!(
            "[route]\nupstream = \"http://localhost:{}\"\nbypass_loopback = false\n\
             [auth]\nscheme = \"negotiate\"\nccache = \"FILE:{}\"\n",
            squid.port,
            cache.display()
        )
    };
    let cfg = write_config(dir.path(), &config(&ccache));
    let d = doctor(&cfg, &["--standalone", "--url", &url], &env).await;
    assert_eq!(d.code, 0, "{}", d.text);
    let auth = d.check("auth localhost:");
    let detail = auth["detail"].as_str().unwrap();
    assert!(
        detail.contains("HTTP/localhost"),
        "the SPN is shown: {}",
        d.text
    );
    assert!(
        detail.contains("expires in"),
        "the ticket expiry is shown: {}",
        d.text
    );
    assert_eq!(d.check("credentials")["status"], "ok", "{}", d.text);
    let clock = d.check("clock kdc EXAMPLE.TEST");
    assert_eq!(
        clock["status"], "ok",
        "the KDC's clock is measured: {}",
        d.text
    );
    assert!(
        clock["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{}", kdc.port)),
        "{}",
        d.text
    );

    let cfg = write_config(dir.path(), &config(&dir.path().join("no-such-ccache")));
    let d = doctor(&cfg, &["--standalone", "--url", &url], &env).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let cred = d.check("credentials");
    assert_eq!(cred["status"], "fail", "{}", d.text);
    assert!(
        cred["fix"].as_str().unwrap().contains("kinit"),
        "{}",
        d.text
    );
}

/// A TLS origin on 127.0.0.1 for `localhost`, signed by `ca`, that completes handshakes.
async fn tls_origin(ca: &waypost_testsupport::ca::TestCa) -> std::net::SocketAddr {
    use waypost_testsupport::ca::Leaf;
    let minted = Leaf::server(&["localhost"]).signed_by(ca);
    let acceptor = tokio_rustls::TlsAcceptor::from(minted.server_config());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_tls_to_the_origin_through_the_proxy_and_names_an_untrusted_ca() {
    let squid = tokio::task::spawn_blocking(|| Squid::start("basic"))
        .await
        .unwrap();
    let ca = waypost_testsupport::ca::TestCa::new("Doctor Test CA");
    let origin = tls_origin(&ca).await;
    let url = format!("https://localhost:{}/", origin.port());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();

    let trusted = format!(
        "{}[tls]\nca_files = [\"{}\"]\n",
        basic_config(squid.port, PASSWORD),
        ca_file.display()
    );
    let cfg = write_config(dir.path(), &trusted);
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 0, "{}", d.text);
    let tls = d.check("tls localhost");
    assert_eq!(tls["status"], "ok", "{}", d.text);
    assert!(
        tls["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("through http://localhost:{}", squid.port)),
        "{}",
        d.text
    );

    let cfg = write_config(dir.path(), &basic_config(squid.port, PASSWORD));
    let d = doctor(&cfg, &["--standalone", "--url", &url], &[]).await;
    assert_eq!(d.code, 1, "{}", d.text);
    let tls = d.check("tls localhost");
    assert_eq!(tls["status"], "fail", "{}", d.text);
    assert!(
        tls["fix"]
            .as_str()
            .unwrap()
            .contains("CA this machine does not trust"),
        "{}",
        d.text
    );
}
