//! The container image, checked where no registry is reachable (base images cannot be
//! pulled) and `podman run` does not work (crun refuses: cgroups in hybrid mode):
//!
//! - deploy/Dockerfile's paths agree with the repository: the build stage's inputs exist, the
//!   binary it installs is the one the runtime stage copies, and ENTRYPOINT and HEALTHCHECK
//!   name that copy's target;
//! - a `FROM scratch` image is built with `podman build` from the locally built binary, the
//!   libraries `ldd` lists, and the runtime stage's own directives (USER, WORKDIR, HEALTHCHECK,
//!   ENTRYPOINT, CMD); `podman create` + `podman export` give its file tree, and in a chroot of
//!   that tree (as the image's USER) `waypost --version` runs, `waypost run` serves, the
//!   Dockerfile's HEALTHCHECK command passes, and a request is proxied to an origin.
//!
//! The podman part skips, saying so, only when podman is not installed
//! (scripts/install-deps.sh installs it) or the test does not run as root (chroot).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use waypost_testsupport::{eventually_blocking, free_port};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One instruction of a Dockerfile: keyword and the rest (continuation lines joined).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let l = line.trim();
        if current.is_empty() && (l.starts_with('#') || l.is_empty()) {
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        if let Some(body) = l.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(l);
        let (kw, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

/// The instructions after the last FROM.
fn runtime_stage(all: &[(String, String)]) -> Vec<(String, String)> {
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    all[last_from + 1..].to_vec()
}

fn json_words(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not an exec-form list: {s}: {e}"))
}

fn dockerfile() -> Vec<(String, String)> {
    instructions(&std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap())
}

/// `COPY --from=build SRC DEST` of the runtime stage: (SRC, DEST).
fn binary_copy(stage: &[(String, String)]) -> (String, String) {
    let copy = stage
        .iter()
        .find(|(k, v)| k == "COPY" && v.starts_with("--from="))
        .expect("the runtime stage copies the binary from the build stage");
    let words: Vec<&str> = copy.1.split_whitespace().collect();
    (words[1].to_string(), words[2].to_string())
}

#[test]
fn the_dockerfile_paths_agree_with_the_repository() {
    let all = dockerfile();
    let first_from = all.iter().position(|(k, _)| k == "FROM").unwrap();
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    assert!(
        last_from > first_from,
        "multi-stage: a build and a runtime stage"
    );
    let build = &all[first_from..last_from];
    let stage = runtime_stage(&all);

    // build stage: `COPY . .` of the repository, then `cargo build --locked --bin waypost`
    assert!(build.iter().any(|(k, v)| k == "COPY" && v == ". ."));
    let run = build
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .find(|v| v.contains("cargo build"))
        .expect("a cargo build");
    assert!(run.contains("--locked") && root().join("Cargo.lock").is_file());
    assert!(run.contains("--bin waypost"));
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"waypost\"\npath = \"src/main.rs\""));
    let (src, dest) = binary_copy(&stage);
    assert!(
        run.contains(&format!("target/dist/waypost {src}")),
        "the build stage installs {src}: {run}"
    );
    // the build context filter keeps what the build needs
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).unwrap();
    for needed in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "pac",
        "tls",
        "auth",
        "testsupport",
    ] {
        assert!(root().join(needed).exists(), "{needed}");
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            "{needed} is ignored"
        );
    }

    // runtime stage: non-root, entrypoint and health check are the copied binary
    let user = stage.iter().find(|(k, _)| k == "USER").expect("USER");
    assert!(
        !user.1.starts_with('0') && !user.1.starts_with("root"),
        "{user:?}"
    );
    let entry = json_words(&stage.iter().find(|(k, _)| k == "ENTRYPOINT").unwrap().1);
    assert_eq!(entry, std::slice::from_ref(&dest));
    let health = &stage.iter().find(|(k, _)| k == "HEALTHCHECK").unwrap().1;
    let cmd = health.split_once("CMD ").expect("HEALTHCHECK ... CMD").1;
    let words = json_words(cmd);
    assert_eq!(words[0], dest);
    assert_eq!(words[1], "ready");
    let installs = stage
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .collect::<String>();
    assert!(installs.contains("libgssapi-krb5-2") && installs.contains("--no-install-recommends"));
}

fn podman_usable() -> Result<(), String> {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return Err("podman is not installed (scripts/install-deps.sh installs it)".into());
    }
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    if uid != b"0\n" {
        return Err("chroot into the exported image needs root".into());
    }
    Ok(())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Libraries the binary loads, as absolute paths (`ldd`).
fn ldd(bin: &Path) -> Vec<PathBuf> {
    run(Command::new("ldd").arg(bin))
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

fn copy_into(tree: &Path, file: &Path) {
    let dest = tree.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Removes the image and container even when an assertion fails.
struct Cleanup {
    image: String,
    container: Option<String>,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(id) = &self.container {
            let _ = Command::new("podman").args(["rm", "-f", id]).output();
        }
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// A one-shot HTTP origin on loopback answering every request with `body`.
fn origin(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_scratch_image_of_the_local_build_runs_serves_and_passes_its_healthcheck() {
    if let Err(why) = podman_usable() {
        eprintln!("SKIP: {why}");
        return;
    }
    let stage = runtime_stage(&dockerfile());
    let (_, dest) = binary_copy(&stage);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_waypost"));

    // build context: rootfs/ with the binary at the Dockerfile's target and its libraries
    let ctx = tempfile::tempdir().unwrap();
    let rootfs = ctx.path().join("rootfs");
    let target = rootfs.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(&bin, &target).unwrap();
    let libs = ldd(&bin);
    assert!(
        libs.iter()
            .any(|l| l.to_string_lossy().contains("libgssapi_krb5")),
        "the default build links the system GSSAPI: {libs:?}"
    );
    for lib in &libs {
        copy_into(&rootfs, lib);
    }
    // what debian-slim + ca-certificates + useradd give the published image
    copy_into(&rootfs, Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let etc = rootfs.join("etc");
    std::fs::write(
        etc.join("passwd"),
        "root:x:0:0::/root:/sbin/nologin\nwaypost:x:10001:10001::/var/lib/waypost:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(etc.join("group"), "root:x:0:\nwaypost:x:10001:\n").unwrap();
    std::fs::write(etc.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let proxy_port = free_port();
    std::fs::create_dir_all(etc.join("waypost")).unwrap();
    std::fs::write(
        etc.join("waypost/waypost.toml"),
        format!("listen = [\"127.0.0.1:{proxy_port}\"]\n"),
    )
    .unwrap();
    std::fs::create_dir_all(rootfs.join("var/lib/waypost")).unwrap();

    let mut containerfile = String::from("FROM scratch\nCOPY rootfs/ /\n");
    for (k, v) in &stage {
        if matches!(
            k.as_str(),
            "USER" | "WORKDIR" | "HEALTHCHECK" | "ENTRYPOINT" | "CMD" | "EXPOSE" | "STOPSIGNAL"
        ) {
            containerfile.push_str(&format!("{k} {v}\n"));
        }
    }
    std::fs::write(ctx.path().join("Containerfile"), &containerfile).unwrap();

    let image = format!("localhost/waypost-scratch-test:{}", std::process::id());
    let mut cleanup = Cleanup {
        image: image.clone(),
        container: None,
        child: None,
    };
    run(Command::new("podman")
        .args(["build", "--quiet", "--format", "docker", "-t", &image, "-f"])
        .arg(ctx.path().join("Containerfile"))
        .arg(ctx.path()));
    let inspect = run(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        &image,
    ]));
    assert!(inspect.starts_with("10001:10001 "), "{inspect}");
    let container = run(Command::new("podman").args(["create", &image]))
        .trim()
        .to_string();
    cleanup.container = Some(container.clone());
    let tree = tempfile::tempdir().unwrap();
    let tar = tree.path().join("image.tar");
    run(Command::new("podman")
        .args(["export", "-o"])
        .arg(&tar)
        .arg(&container));
    let fs = tree.path().join("fs");
    std::fs::create_dir(&fs).unwrap();
    run(Command::new("tar").arg("-C").arg(&fs).arg("-xf").arg(&tar));

    // as the image's user, in the exported tree: nothing from the host file system
    let user = stage.iter().find(|(k, _)| k == "USER").unwrap().1.clone();
    let in_image = |args: &[String]| {
        let mut c = Command::new("chroot");
        c.arg(format!("--userspec={user}"))
            .arg(&fs)
            .args(args)
            .env_clear()
            // PATH only for finding chroot itself; inside, every command is a full path
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/var/lib/waypost");
        c
    };
    let version = run(&mut in_image(&[dest.clone(), "--version".into()]));
    assert!(version.starts_with("waypost "), "{version}");

    let entry = json_words(&stage.iter().find(|(k, _)| k == "ENTRYPOINT").unwrap().1);
    let cmd = json_words(&stage.iter().find(|(k, _)| k == "CMD").unwrap().1);
    let mut args: Vec<String> = entry.into_iter().chain(cmd).collect();
    args.extend(["--config".into(), "/etc/waypost/waypost.toml".into()]);
    cleanup.child = Some(
        in_image(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // the Dockerfile's HEALTHCHECK, pointed at this instance's port
    let health = &stage.iter().find(|(k, _)| k == "HEALTHCHECK").unwrap().1;
    let check: Vec<String> = json_words(health.split_once("CMD ").unwrap().1)
        .into_iter()
        .map(|w| w.replace("127.0.0.1:3128", &format!("127.0.0.1:{proxy_port}")))
        .collect();
    let healthy = eventually_blocking(
        Duration::from_secs(30),
        || {
            in_image(&check)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        },
        |ok| *ok,
    );
    assert!(healthy);

    let origin_port = origin("hello from the origin\n");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-x"])
        .arg(format!("http://127.0.0.1:{proxy_port}"))
        .arg(format!("http://127.0.0.1:{origin_port}/via-scratch-image"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the origin\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_parser_joins_continuations_and_skips_comments() {
    let all = instructions("# c\nFROM a AS b\nRUN x \\\n  && y\n# d\nFROM c\nCMD [\"run\"]\n");
    let keys: Vec<_> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["FROM", "RUN", "FROM", "CMD"]);
    assert_eq!(all[1].1, "x  && y");
    assert_eq!(
        runtime_stage(&all),
        [("CMD".to_string(), "[\"run\"]".to_string())]
    );
}
