//! The `waypost` binary: parse the command line, load the config, run until a signal.

use std::process::ExitCode;

use clap::Parser;
use waypost::cli::{Cli, Command, ConfigCommand, RunArgs};
use waypost::config;

fn main() -> ExitCode {
    // `waypost pac-worker`: a PAC evaluation process started by the proxy itself (no runtime,
    // no config, no logging: it speaks frames on stdin/stdout; see waypost_pac::isolate)
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "pac-worker")
    {
        // once its script is loaded, the worker gives back the pages loading left (as the
        // proxy does after its start)
        let after_load = || {
            waypost::ops::memory::drop_clean_file_pages();
            waypost::ops::memory::release_free_heap();
        };
        return ExitCode::from(waypost_pac::worker_main_with(after_load).clamp(0, 255) as u8);
    }
    // Usage errors exit 1 (as `waypost pac` documents); 2 stays "invalid config / script error".
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    // socket activation: the LISTEN_* variables are read (and removed) before any thread starts
    let inherited = match &cli.command {
        None | Some(Command::Run(_)) => match waypost::listen::systemd::take_listen_fds() {
            Ok(i) => i.unwrap_or_default(),
            Err(e) => {
                eprintln!("waypost: socket activation: {e}");
                return ExitCode::from(1);
            }
        },
        Some(_) => Default::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("waypost: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match cli.command {
        None => runtime.block_on(run(cli.run, inherited)),
        Some(Command::Run(args)) => runtime.block_on(run(args, inherited)),
        Some(Command::Config(ConfigCommand::Check { file })) => check(file),
        Some(Command::Pac(cmd)) => {
            ExitCode::from(runtime.block_on(waypost_pac::cli::run(cmd)).clamp(0, 255) as u8)
        }
        Some(Command::Auth(waypost_auth::cli::AuthCommand::Status { config, json })) => {
            auth_status(config, json)
        }
        Some(Command::Auth(cmd)) => {
            ExitCode::from(runtime.block_on(waypost_auth::cli::run(cmd)).clamp(0, 255) as u8)
        }
        Some(Command::Explain(args)) => runtime.block_on(explain(args)),
        Some(Command::Wpad(waypost::cli::WpadCommand::Discover(args))) => ExitCode::from(
            runtime
                .block_on(waypost::net::wpad::cli::run_discover(args))
                .clamp(0, 255) as u8,
        ),
        Some(Command::Ca(cmd)) => ExitCode::from(waypost_tls::cli::run(cmd).clamp(0, 255) as u8),
        Some(Command::Ready(args)) => runtime.block_on(ready(args)),
        Some(Command::Doctor(args)) => runtime.block_on(doctor(args)),
        Some(Command::Env(args)) => env(args),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "waypost", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Some(Command::Man { dir }) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let written = match &dir {
                Some(dir) => write_man_pages(cmd, dir),
                None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("waypost: cannot write the man page: {e}");
                    ExitCode::from(1)
                }
            }
        }
    };
    // log lines still waiting in the batch go out before the process ends
    waypost::logging::flush();
    code
}

/// `waypost env`: the lines for the shell, from the configuration `run` would load.
/// One page per visible subcommand, as `clap_mangen::generate_to` writes them, but each page's
/// footer names the program and its version ("waypost 0.1.0", not the bare subcommand name).
fn write_man_pages(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    fn write(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            write(sub.clone(), dir)?;
        }
        let man = clap_mangen::Man::new(cmd).source(concat!("waypost ", env!("CARGO_PKG_VERSION")));
        let mut file = std::fs::File::create(dir.join(man.get_filename()))?;
        man.render(&mut file)
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    write(cmd, dir)
}

fn env(args: waypost::cli::EnvArgs) -> ExitCode {
    use waypost::ops::clientenv::{render, Settings};
    match load_config(&args.run) {
        Ok(cfg) => {
            print!(
                "{}",
                render(
                    &Settings::from_config(&cfg, args.with_credentials),
                    args.shell
                )
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("waypost: {e}");
            ExitCode::from(2)
        }
    }
}

/// `waypost auth status`: the identities of the configuration as `waypost run` loads it.
fn auth_status(file: Option<std::path::PathBuf>, json: bool) -> ExitCode {
    match config::load(file.as_deref(), &config::Overrides::default()) {
        Ok(cfg) => ExitCode::from(waypost_auth::cli::status(&cfg.auth, json) as u8),
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

fn check(file: Option<std::path::PathBuf>) -> ExitCode {
    match config::load(file.as_deref(), &config::Overrides::default()) {
        Ok(mut cfg) => {
            // a PAC URL may carry userinfo or a token: shown redacted
            if let Some(pac) = &mut cfg.pac {
                pac.source = waypost::redact::url(&pac.source);
                for s in &mut pac.sources {
                    *s = waypost::redact::url(s);
                }
            }
            // deprecated syntax, scopes that can never change anything
            for (key, note) in &cfg.scopes.notes {
                println!("warning: {key}: {note}");
            }
            println!("configuration is valid; effective settings:\n{cfg:#?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
    }
}

/// `waypost explain URL`: asks the running instance's admin surface, with waypost's own HTTP
/// client (the built-in defaults' timeouts).
async fn explain(args: waypost::cli::ExplainArgs) -> ExitCode {
    let addr = args
        .proxy
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let url = format!(
        "http://{addr}/explain?url={}",
        waypost::ops::admin::percent_encode(&args.url)
    );
    let client = match waypost::upstream::standalone_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("waypost: {e}");
            return ExitCode::from(1);
        }
    };
    let got = match client.get(&url, "application/json", 4 << 20).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("waypost: cannot reach the running waypost at {addr}: {e} (start it, or pass --proxy)");
            return ExitCode::from(1);
        }
    };
    let body = String::from_utf8_lossy(&got.body);
    if got.status != http::StatusCode::OK {
        eprint!("waypost: {body}");
        return ExitCode::from(1);
    }
    match serde_json::from_str::<serde_json::Value>(body.trim()) {
        Ok(v) if args.json => println!("{v}"),
        Ok(v) => print!("{}", waypost::ops::explain::render_text(&v)),
        Err(_) => print!("{body}"),
    }
    ExitCode::SUCCESS
}

/// `waypost ready`: asks `/readyz` (again every 250 ms until `--wait` has passed).
async fn ready(args: waypost::cli::ReadyArgs) -> ExitCode {
    let base = args.admin.trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    };
    let url = format!("{base}/readyz");
    let client = match waypost::upstream::standalone_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("waypost: {e}");
            return ExitCode::from(1);
        }
    };
    let deadline = args.wait.map(|w| tokio::time::Instant::now() + w);
    loop {
        let (ready, text) = match client.get(&url, "text/plain", 1 << 20).await {
            Ok(g) => (
                g.status == http::StatusCode::OK,
                String::from_utf8_lossy(&g.body).into_owned(),
            ),
            Err(e) => (
                false,
                format!("cannot reach waypost at {base}: {e} (is it running? pass --admin)\n"),
            ),
        };
        let again = deadline.is_some_and(|d| tokio::time::Instant::now() < d);
        if ready || !again {
            if !args.quiet {
                if ready {
                    print!("{text}");
                } else {
                    eprint!("{text}");
                }
            }
            return if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// `waypost doctor`: every check, one verdict per line (or JSON); exit 1 when one failed.
async fn doctor(args: waypost::cli::DoctorArgs) -> ExitCode {
    use waypost::ops::doctor::{self, Options, Status};
    waypost::logging::init(
        &config::LogConfig {
            level: "error".into(),
            format: config::LogFormat::Text,
            access_log: false,
        },
        args.run.verbosity(),
    );
    let opts = Options {
        admin: args.admin.clone(),
        standalone: args.standalone,
        url: args.url.clone(),
        config_file: args.run.config.clone(),
    };
    let verdicts = doctor::run(load_config(&args.run), &opts).await;
    if args.json {
        println!("{}", serde_json::json!({ "checks": verdicts }));
    } else {
        print!("{}", doctor::render_text(&verdicts));
    }
    if verdicts.iter().any(|v| v.status == Status::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads the configuration as `run` does: file, environment, flags (credentials included).
fn load_config(args: &RunArgs) -> Result<config::Config, String> {
    let mut cfg =
        config::load(args.config.as_deref(), &args.overrides()).map_err(|e| e.to_string())?;
    args.auth.apply(&mut cfg.auth);
    cfg.auth
        .validate()
        .map_err(|e| format!("invalid command line: {e}\n"))?;
    Ok(cfg)
}

async fn run(args: RunArgs, inherited: waypost::listen::systemd::Inherited) -> ExitCode {
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprint!("waypost: {e}");
            return ExitCode::from(2);
        }
    };
    waypost::logging::init(&cfg.log, args.verbosity());
    for (key, note) in &cfg.scopes.notes {
        tracing::warn!(key = %key, "{note}");
    }
    let config_file = args.config.clone();
    let loader_args = args.clone();
    let loader: waypost::ops::reload::Loader = Box::new(move || load_config(&loader_args));
    let activated = !inherited.is_empty();
    let running = match waypost::listen::server::start_with(
        cfg,
        Some(loader),
        config_file,
        inherited,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("waypost: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = running.live.spawn_sighup() {
        tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads happen only on file changes");
    }
    waypost::ops::memory::spawn(running.app.metrics.clone());
    if activated {
        tracing::info!("serving on sockets handed over by socket activation");
    }
    waypost::listen::systemd::notify("READY=1");
    wait_for_signal().await;
    waypost::listen::systemd::notify("STOPPING=1");
    tracing::info!("shutting down: no new connections; draining requests and tunnels");
    running.shutdown();
    if running.wait().await {
        tracing::info!("drained; bye");
    } else {
        tracing::warn!("shutdown grace period over; closing what is left");
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
