//! `waypost ca init|export`: the subcommands the root binary mounts. Each prints what it
//! did or why it failed, and returns the process exit code.

use std::path::PathBuf;

use crate::intercept::Ca;

/// Manage the local interception CA.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CaCommand {
    /// Create a new CA (ca.key mode 0600, ca.pem) in DIR; refuses to overwrite.
    Init {
        /// Directory for the CA files (same as tls.intercept.ca_dir).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the CA certificate (PEM) to install in client trust stores.
    Export {
        /// Directory holding the CA files.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn report(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Runs one CA command; 0 on success, 1 on failure (message on stderr).
pub fn run(cmd: CaCommand) -> i32 {
    match cmd {
        CaCommand::Init { dir } => match Ca::init(&dir) {
            Ok(cert) => {
                eprintln!(
                    "created the waypost CA in {}\ninstall {} in your clients' trust stores (or run `waypost ca export --dir {}`)\nthen set tls.intercept.ca_dir = {:?}",
                    dir.display(),
                    cert.display(),
                    dir.display(),
                    dir.display()
                );
                0
            }
            Err(e) => {
                eprintln!("waypost ca init: {}", report(&e));
                1
            }
        },
        CaCommand::Export { dir } => match Ca::load(&dir) {
            Ok(ca) => {
                print!("{}", ca.export_pem());
                0
            }
            Err(e) => {
                eprintln!(
                    "waypost ca export: {} (create one with `waypost ca init --dir DIR`)",
                    report(&e)
                );
                1
            }
        },
    }
}
