//! deploy/kubernetes without a cluster: the kustomize overlays (`sidecar`, `node-local`)
//! render, the rendering equals the plain manifests shipped beside them, every manifest passes
//! `kubernetes-validate --strict` (PyPI, in the venv of scripts/install-deps.sh), and what the
//! manifests say agrees with the config they mount: that config loads with waypost's own loader
//! (its files materialised from the ConfigMap and an example Secret at their mount paths), the
//! probes ask the admin listener's port for /readyz and /healthz, the proxy port is the
//! `listen` port, the app's HTTP(S)_PROXY/NO_PROXY point there, credentials are files.
//!
//! Rendering: tests/deploy/kustomize_lite.py implements the kustomize subset the overlays use
//! (Debian has no kustomize); where `kubectl` is installed its built-in kustomize renders too
//! and must agree.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use waypost::config::{self, Config, Overrides};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn k8s() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// The venv of scripts/install-deps.sh (same rule as tests/peers/lib.sh).
fn venv() -> PathBuf {
    let cache = match std::env::var_os("WP_TEST_CACHE") {
        Some(c) => PathBuf::from(c),
        None if nix_is_root() => PathBuf::from("/var/cache/waypost-test"),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            base.join("waypost-test")
        }
    };
    let v = cache.join("venv");
    assert!(
        v.join("bin/kubernetes-validate").exists(),
        "kubernetes-validate missing in {}: run scripts/install-deps.sh",
        v.display()
    );
    v
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn lite(args: &[&str]) -> Value {
    let out = Command::new(venv().join("bin/python"))
        .arg(root().join("tests/deploy/kustomize_lite.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kustomize_lite {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn key(doc: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"]),
    )
}

fn by_key(docs: &[Value]) -> HashMap<(String, String, String), Value> {
    docs.iter().map(|d| (key(d), d.clone())).collect()
}

/// Renders an overlay; checks kubectl's kustomize agrees where it exists.
fn render(overlay: &str) -> Vec<Value> {
    let dir = k8s().join(overlay);
    let out = lite(&["render", dir.to_str().unwrap()]);
    let verdict = out["kubectl"].as_str().unwrap();
    match verdict {
        "agrees" => eprintln!("{overlay}: kubectl kustomize renders the same"),
        "absent" => eprintln!("{overlay}: no kubectl here; rendered by kustomize_lite only"),
        other => panic!("{overlay}: kustomize_lite and kubectl kustomize differ: {other}"),
    }
    out["docs"].as_array().unwrap().clone()
}

fn load(files: &[PathBuf]) -> Vec<Value> {
    let args: Vec<&str> = std::iter::once("load")
        .chain(files.iter().map(|f| f.to_str().unwrap()))
        .collect();
    lite(&args).as_array().unwrap().clone()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The pod template's container named `waypost` and whether it is an init container.
fn waypost_container(workload: &Value) -> (&Value, bool) {
    let spec = &workload["spec"]["template"]["spec"];
    for (list, init) in [("initContainers", true), ("containers", false)] {
        if let Some(c) = spec[list]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == "waypost"))
        {
            return (c, init);
        }
    }
    panic!(
        "no container named waypost in {}",
        workload["metadata"]["name"]
    );
}

fn container_port(container: &Value, port: &Value) -> u16 {
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no port named {name}"))["containerPort"]
            .as_u64()
            .unwrap() as u16,
        other => panic!("port {other}"),
    }
}

/// Lays out the waypost container's volumes under a temporary root (ConfigMap data, the
/// example Secret's files with the volume's mode, empty dirs), rewrites the mount paths in the
/// mounted config to that root, and loads it with waypost's loader.
fn load_mounted_config(docs: &[Value], workload: &Value) -> (Config, String, tempfile::TempDir) {
    let (c, _) = waypost_container(workload);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let secret = &load(&[k8s().join("secret.example.yaml")])[0];
    let volumes = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let mount = m["mountPath"].as_str().unwrap().to_string();
        let dir = tmp.path().join(mount.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let vol = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        if let Some(name) = vol["configMap"]["name"].as_str() {
            let cm = find(docs, "ConfigMap")
                .into_iter()
                .find(|d| d["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("ConfigMap {name} is not in the rendering"));
            for (file, text) in cm["data"].as_object().unwrap() {
                std::fs::write(dir.join(file), text.as_str().unwrap()).unwrap();
            }
        } else if let Some(name) = vol["secret"]["secretName"].as_str() {
            assert_eq!(secret["metadata"]["name"], name, "secret.example.yaml");
            let mode = vol["secret"]["defaultMode"].as_u64().unwrap();
            assert_eq!(mode, 0o400, "credentials are mounted with mode 0400");
            let mut files: Vec<String> = Vec::new();
            for section in ["stringData", "data"] {
                if let Some(o) = secret[section].as_object() {
                    files.extend(o.keys().cloned());
                }
            }
            for f in files {
                let p = dir.join(&f);
                std::fs::write(&p, "placeholder\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode as u32)).unwrap();
            }
        } else {
            assert!(vol.get("emptyDir").is_some(), "volume {vol}");
        }
        mounts.push(mount);
    }
    let local = tmp.path().join(config_path.trim_start_matches('/'));
    let original = std::fs::read_to_string(&local)
        .unwrap_or_else(|e| panic!("{config_path} is not on a mounted volume: {e}"));
    let mut text = original.clone();
    for m in &mounts {
        text = text.replace(
            &format!("\"{m}/"),
            &format!(
                "\"{}/",
                tmp.path().join(m.trim_start_matches('/')).display()
            ),
        );
    }
    std::fs::write(&local, &text).unwrap();
    let cfg = config::load_with_env(Some(&local), &Overrides::default(), HashMap::new())
        .unwrap_or_else(|e| panic!("the mounted {config_path} does not load:\n{e}"));
    (cfg, original, tmp)
}

fn port_of(addrs: &[SocketAddr]) -> Vec<u16> {
    addrs.iter().map(|a| a.port()).collect()
}

/// Probes, ports and annotations of a waypost workload agree with its config.
fn check_workload_against_config(docs: &[Value], workload: &Value) -> Config {
    let (cfg, original, _tmp) = load_mounted_config(docs, workload);
    let (c, _) = waypost_container(workload);
    let admin_ports = port_of(&cfg.admin_listen);
    assert!(
        cfg.admin_listen.iter().any(|a| a.ip().is_unspecified()),
        "the kubelet probes from outside the pod: admin_listen must be on the pod IP: {:?}",
        cfg.admin_listen
    );
    for (probe, path) in [
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        let port = container_port(c, &get["port"]);
        assert!(
            admin_ports.contains(&port),
            "{probe} asks port {port}, admin_listen is {admin_ports:?}"
        );
    }
    assert!(
        port_of(&cfg.listen).contains(&container_port(c, &Value::from("proxy"))),
        "containerPort proxy vs listen {:?}",
        cfg.listen
    );
    let ann = &workload["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    let scrape: u16 = ann["prometheus.io/port"].as_str().unwrap().parse().unwrap();
    assert!(admin_ports.contains(&scrape), "scrape port {scrape}");
    // credentials: files from the Secret, never environment variables
    let env = c["env"].as_array().cloned().unwrap_or_default();
    assert!(
        env.iter().all(|e| e.get("valueFrom").is_none()),
        "waypost takes no credentials from the environment: {env:?}"
    );
    assert!(
        original.contains("keytab = \"/var/run/secrets/waypost/"),
        "auth.keytab on the Secret's mount:\n{original}"
    );
    assert!(cfg.auth.keytab.is_some());
    cfg
}

fn env_of(container: &Value) -> HashMap<String, String> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_string(),
                e["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

fn assert_proxy_env(env: &HashMap<String, String>, proxy: &str) {
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        assert_eq!(env.get(name).map(String::as_str), Some(proxy), "{name}");
    }
    for name in ["NO_PROXY", "no_proxy"] {
        let v = env.get(name).unwrap_or_else(|| panic!("{name} missing"));
        let parts: Vec<&str> = v.split(',').collect();
        for needed in [".svc", ".cluster.local", "localhost", "127.0.0.1"] {
            assert!(parts.contains(&needed), "{name} lacks {needed}: {v}");
        }
        let cidrs = parts
            .iter()
            .filter(|p| p.parse::<ipnet::IpNet>().is_ok())
            .count();
        assert!(cidrs >= 2, "{name} needs the service and pod CIDRs: {v}");
    }
}

#[test]
fn overlays_render_to_the_plain_manifests_shipped_beside_them() {
    for overlay in ["sidecar", "node-local"] {
        let rendered = render(overlay);
        let plain = load(&[k8s().join(format!("{overlay}.yaml"))]);
        assert_eq!(
            by_key(&rendered),
            by_key(&plain),
            "deploy/kubernetes/{overlay}.yaml is stale: kubectl kustomize deploy/kubernetes/{overlay} > deploy/kubernetes/{overlay}.yaml"
        );
    }
}

#[test]
fn every_manifest_passes_strict_schema_validation() {
    let files: Vec<PathBuf> = [
        "sidecar.yaml",
        "node-local.yaml",
        "secret.example.yaml",
        "node-local/app-example.yaml",
    ]
    .iter()
    .map(|f| k8s().join(f))
    .collect();
    let out = Command::new(venv().join("bin/kubernetes-validate"))
        .args(["--strict", "--no-warn"])
        .args(&files)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{text}"
    );
    assert_eq!(
        text.matches(" passed for resource ").count(),
        2 + 5 + 1 + 1,
        "{text}"
    );
}

#[test]
fn strict_validation_would_reject_an_unknown_field() {
    // The check above can fail: a misspelt field in a probe is an error under --strict.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(k8s().join("sidecar.yaml"))
        .unwrap()
        .replace("startupProbe:", "startupProbes:");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(venv().join("bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_sidecar_starts_before_the_app_and_probes_what_its_config_serves() {
    let docs = render("sidecar");
    let deployment = find(&docs, "Deployment")[0];
    let (c, init) = waypost_container(deployment);
    assert!(init, "a native sidecar is an init container");
    assert_eq!(c["restartPolicy"], "Always");
    let cfg = check_workload_against_config(&docs, deployment);
    assert!(
        cfg.listen.iter().all(|a| a.ip().is_loopback()),
        "{:?}",
        cfg.listen
    );
    let app = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .unwrap();
    assert_proxy_env(
        &env_of(app),
        &format!("http://127.0.0.1:{}", cfg.listen[0].port()),
    );
}

#[test]
fn the_node_local_proxy_serves_only_its_node_and_labelled_pods() {
    let docs = render("node-local");
    let ds = find(&docs, "DaemonSet")[0];
    let cfg = check_workload_against_config(&docs, ds);
    assert!(
        !cfg.allow.is_empty(),
        "a pod-network listener needs an allow list"
    );
    assert!(
        cfg.client_auth.is_some(),
        "clients authenticate (client_auth)"
    );
    let (c, _) = waypost_container(ds);
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];

    let svc = find(&docs, "Service")[0];
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Local");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "Service selector {k}");
    }
    let proxy_port = cfg.listen[0].port();
    let svc_ports = svc["spec"]["ports"].as_array().unwrap();
    let proxy = svc_ports.iter().find(|p| p["name"] == "proxy").unwrap();
    assert_eq!(container_port(c, &proxy["targetPort"]), proxy_port);

    let np = find(&docs, "NetworkPolicy")[0];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&pod_labels[k], v, "NetworkPolicy podSelector {k}");
    }
    let rules = np["spec"]["ingress"].as_array().unwrap();
    let proxy_rule = rules
        .iter()
        .find(|r| r["ports"][0]["port"] == proxy_port)
        .expect("an ingress rule for the proxy port");
    let client_labels = proxy_rule["from"][0]["podSelector"]["matchLabels"]
        .as_object()
        .expect("only labelled pods reach the proxy port");

    let app = &load(&[k8s().join("node-local/app-example.yaml")])[0];
    let app_pod = &app["spec"]["template"];
    for (k, v) in client_labels {
        assert_eq!(
            &app_pod["metadata"]["labels"][k], v,
            "the example app carries {k}"
        );
    }
    let svc_host = format!(
        "{}.{}.svc.cluster.local:{}",
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap(),
        proxy["port"]
    );
    let user = &cfg.client_auth.as_ref().unwrap().username;
    assert_proxy_env(
        &env_of(&app_pod["spec"]["containers"][0]),
        &format!("http://{user}:$(WAYPOST_CLIENT_PASSWORD)@{svc_host}"),
    );

    let sm = &load(&[k8s().join("node-local/servicemonitor.yaml")])[0];
    assert_eq!(sm["kind"], "ServiceMonitor");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    let admin = svc_ports
        .iter()
        .find(|p| p["name"] == sm["spec"]["endpoints"][0]["port"])
        .expect("the ServiceMonitor's port is a named port of the Service");
    assert!(port_of(&cfg.admin_listen).contains(&container_port(c, &admin["targetPort"])));
}

#[test]
fn configs_in_the_overlays_and_base_are_valid_waypost_configs_on_their_own() {
    // Files under deploy/kubernetes/*/waypost.toml must at least parse with no unknown key
    // (paths may not exist here, so only key problems are failures).
    for dir in ["base", "sidecar", "node-local"] {
        let path = k8s().join(dir).join("waypost.toml");
        if let Err(e) = config::load_with_env(
            Some(Path::new(&path)),
            &Overrides::default(),
            HashMap::new(),
        ) {
            let bad: Vec<_> = e
                .problems
                .iter()
                .filter(|p| p.message.contains("unknown key") || p.message.contains("invalid type"))
                .collect();
            assert!(bad.is_empty(), "{}: {bad:?}", path.display());
        }
    }
}
