//! Command-line interface: `waypost [run]`, `waypost config check`, and the other subcommands.
//!
//! Raw flags live here; they become [`crate::config::Overrides`] and win over the file and the
//! environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "waypost",
    version,
    about = "A local forward proxy that decides per URL how to reach it, the way WinHTTP does"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default when no subcommand is given).
    Run(RunArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Test PAC scripts: evaluate URLs (or a list), check expected answers, diff two scripts,
    /// coverage, syntax, benchmark (the pactester of waypost).
    #[command(subcommand)]
    Pac(waypost_pac::cli::PacCommand),
    /// The local CA for opt-in TLS interception.
    #[command(subcommand)]
    Ca(waypost_tls::cli::CaCommand),
    /// Ask the running waypost how it would route a URL, and why.
    Explain(ExplainArgs),
    /// Upstream proxy authentication: try one authenticated request and show each leg.
    #[command(subcommand)]
    Auth(waypost_auth::cli::AuthCommand),
    /// WPAD: find the network's PAC URL by DHCP (option 252) and DNS, and say how.
    #[command(subcommand)]
    Wpad(WpadCommand),
    /// Exit 0 when the running waypost is ready (listening, PAC loaded, credentials usable);
    /// for container health checks and start-up ordering (no curl needed).
    Ready(ReadyArgs),
    /// Run the checks a support engineer would, against the running waypost or standalone,
    /// and print a verdict per line with the fix (exit 1 when something must be fixed).
    Doctor(DoctorArgs),
    /// Print the environment lines that point common tools at waypost (http_proxy and
    /// friends, npm, pip, the JVM; git and Docker as comments): eval "$(waypost env)".
    Env(EnvArgs),
    /// Print a shell completion script (e.g. waypost completions bash > /etc/bash_completion.d/waypost).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): waypost man > waypost.1; with --dir, write one page per
    /// subcommand too (waypost.1, waypost-run.1, ...).
    Man {
        /// Write the pages into this directory instead of printing the main one.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The shell whose syntax is printed.
    #[arg(long, value_enum, default_value = "bash")]
    pub shell: crate::ops::clientenv::Shell,
    /// Put the client_auth credentials into the proxy URLs (they are left out otherwise).
    #[arg(long)]
    pub with_credentials: bool,
    /// The configuration the proxy runs with (file, environment, flags).
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ReadyArgs {
    /// The running waypost's admin address (its proxy port, or an admin_listen address).
    #[arg(long, default_value = "http://127.0.0.1:3128", value_name = "URL")]
    pub admin: String,
    /// Keep asking until ready or this long has passed (e.g. 30s); without it, ask once.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Print nothing; only the exit code tells (0 ready, 1 not ready or not reachable).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum WpadCommand {
    /// Run discovery now and print each attempt and the result.
    Discover(crate::net::wpad::cli::DiscoverArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The URL to explain, e.g. https://www.example.com/
    pub url: String,
    /// The running waypost's address.
    #[arg(long, default_value = "127.0.0.1:3128")]
    pub proxy: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (with environment and defaults) and print the result.
    Check {
        /// The TOML file; without it, the defaults and the environment are checked.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Address to listen on (repeatable), e.g. 127.0.0.1:3128 or [::1]:3128.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Configuration file (TOML). Without one, embedded defaults apply.
    #[arg(long, short = 'c', value_name = "FILE", env = "WAYPOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Fixed upstream proxy for all requests, e.g. http://proxy.corp.example:3128.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// PAC script: a file, an http(s):// URL, or "auto" for WPAD discovery (DHCP, then DNS).
    #[arg(long, value_name = "FILE|URL|auto")]
    pub pac: Option<String>,
    /// Credentials for the upstream proxy (also in [auth] of the config).
    #[command(flatten)]
    pub auth: waypost_auth::cli::AuthFlags,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (-q warn, -qq error).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl RunArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            pac: self.pac.clone(),
            log_level: None,
        }
    }

    pub fn verbosity(&self) -> i8 {
        self.verbose.min(3) as i8 - self.quiet.min(3) as i8
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration to check (as `waypost run` would load it: file, environment, flags).
    #[command(flatten)]
    pub run: RunArgs,
    /// The running waypost's admin address; without it, the first listen address is asked.
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// Do not ask a running instance: check the configuration standalone.
    #[arg(long)]
    pub standalone: bool,
    /// The URL the PAC is evaluated for and fetched through the chain.
    #[arg(long, default_value = "https://example.com/", value_name = "URL")]
    pub url: String,
    /// Print the verdicts as JSON.
    #[arg(long)]
    pub json: bool,
}
