//! Configuration: every shipped file loads; bad input is reported at once, with file, line and key.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use waypost::config::{self, Overrides};

#[test]
fn every_file_in_config_loads_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        config::load_with_env(Some(&path), &Overrides::default(), HashMap::new())
            .unwrap_or_else(|e| panic!("{} does not load:\n{e}", path.display()));
        n += 1;
    }
    assert!(
        n >= 2,
        "expected config/default.toml and examples, found {n}"
    );
}

#[test]
fn the_default_file_matches_the_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let from_file =
        config::load_with_env(Some(&path), &Overrides::default(), HashMap::new()).unwrap();
    let built_in = config::load_with_env(None, &Overrides::default(), HashMap::new()).unwrap();
    assert_eq!(format!("{from_file:?}"), format!("{built_in:?}"));
}

#[test]
fn unknown_keys_and_bad_values_are_all_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = [\"127.0.0.1:3128\"]\n\n[route]\nupstrem = \"http://p:1\"\n\n[timeouts]\nconnect = \"soon\"\n").unwrap();
    let err =
        config::load_with_env(Some(&path), &Overrides::default(), HashMap::new()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 2, "{text}");
    assert!(
        text.contains(&format!("{}:4: route.upstrem: unknown key", path.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}:7: timeouts.connect: invalid duration",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn route_timeouts_and_tls_mistakes_in_one_file_are_reported_together() {
    // [tls] and [auth] deny unknown fields on their own; before, their error hid the rest.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.toml");
    std::fs::write(
        &path,
        "[route]\nupstrem = \"http://p:1\"\n\n[timeouts]\nconnect = \"soon\"\n\n\
         [tls]\nmin_versoin = \"1.3\"\n\n[auth]\nschem = \"ntlm\"\nlockout_after = \"often\"\n",
    )
    .unwrap();
    let err =
        config::load_with_env(Some(&path), &Overrides::default(), HashMap::new()).unwrap_err();
    let text = err.to_string();
    let file = path.display();
    for expected in [
        format!("{file}:2: route.upstrem: unknown key"),
        format!("{file}:5: timeouts.connect: invalid duration"),
        format!("{file}:8: tls.min_versoin: unknown key"),
        format!("{file}:11: auth.schem: unknown key"),
        format!("{file}:12: auth.lockout_after: invalid type"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(err.problems.len(), 5, "{text}");
}

#[test]
fn config_check_prints_every_problem_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.toml");
    std::fs::write(
        &path,
        "[route]\nupstrem = \"http://p:1\"\n[timeouts]\nconnect = \"soon\"\n[tls]\nmin_versoin = \"1.3\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args(["config", "check"])
        .arg(&path)
        .env_remove("WAYPOST_CONFIG")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for key in ["route.upstrem", "timeouts.connect", "tls.min_versoin"] {
        assert!(text.contains(key), "{key} missing in:\n{text}");
    }
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let env: HashMap<String, String> = [
        (
            "WAYPOST_ROUTE__UPSTREAM".to_string(),
            "http://from-env:1".to_string(),
        ),
        ("WAYPOST_TIMEOUTS__CONNECT".to_string(), "5s".to_string()),
    ]
    .into();
    let cfg = config::load_with_env(None, &Overrides::default(), env.clone()).unwrap();
    assert_eq!(
        cfg.routes.http_upstream.as_ref().unwrap().label(),
        "from-env:1"
    );
    assert_eq!(cfg.timeouts.connect, std::time::Duration::from_secs(5));
    let flags = Overrides {
        upstream: Some("http://from-flag:2".into()),
        ..Default::default()
    };
    let cfg = config::load_with_env(None, &flags, env).unwrap();
    assert_eq!(cfg.routes.http_upstream.unwrap().label(), "from-flag:2");
}

#[test]
fn bad_environment_values_name_the_variable() {
    let env: HashMap<String, String> =
        [("WAYPOST_TIMEOUTS__SEND".to_string(), "never".to_string())].into();
    let err = config::load_with_env(None, &Overrides::default(), env).unwrap_err();
    assert!(
        err.to_string()
            .contains("environment WAYPOST_TIMEOUTS__SEND: timeouts.send"),
        "{err}"
    );
}

#[test]
fn config_check_command_validates_and_prints_or_fails_with_status_2() {
    let bin = env!("CARGO_BIN_EXE_waypost");
    let ok = Command::new(bin)
        .args(["config", "check", "config/default.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration is valid"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = [\"0.0.0.0:3128\"]\n").unwrap();
    let out = Command::new(bin)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("allow") && err.contains("open relay"), "{err}");
}

#[test]
fn secrets_are_redacted_from_the_printed_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[client_auth]\nusername = \"u\"\npassword = \"hunter2-secret\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_waypost"))
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("redacted"));
}

#[test]
fn reserved_environment_variables_are_not_taken_for_config_keys() {
    let env: HashMap<String, String> = [
        (
            "WAYPOST_CONFIG".to_string(),
            "/etc/waypost/waypost.toml".to_string(),
        ),
        ("WAYPOST_LOG".to_string(), "debug".to_string()),
        ("WAYPOST_AUTH_USER".to_string(), "someone".to_string()),
        ("WAYPOST_AUTH_PASSWORD".to_string(), "pw".to_string()),
    ]
    .into();
    config::load_with_env(None, &Overrides::default(), env)
        .expect("reserved variables are not config keys");
}
