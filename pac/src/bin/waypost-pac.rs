//! Stand-alone `waypost-pac` binary: the same subcommands as `waypost pac`, for testing the
//! crate on its own. Usage errors exit 1 (clap's own default would be 2, the script-error code).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "waypost-pac",
    about = "PAC script testing (eval, check, bench, test, diff)"
)]
struct Cli {
    #[command(subcommand)]
    command: waypost_pac::cli::PacCommand,
}

fn main() {
    // a PAC worker process started by an engine with process isolation
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "pac-worker")
    {
        std::process::exit(waypost_pac::worker_main());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                waypost_pac::cli::EXIT_USAGE
            } else {
                0
            };
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::exit(waypost_pac::cli::EXIT_USAGE);
        }
    };
    let code = runtime.block_on(waypost_pac::cli::run(cli.command));
    std::process::exit(code);
}
