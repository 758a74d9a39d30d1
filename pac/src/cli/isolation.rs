//! Where the `waypost pac` commands run a script: in a `pac-worker` child process of the running
//! binary (`waypost` or `waypost-pac`), under the proxy's default budgets (memory limit, load
//! and call deadlines), so a hostile script costs one worker and is reported for the URL that
//! triggered it — or, with `--in-process`, on a thread of the command itself (for profiling;
//! a script that exhausts memory then aborts the command). Values only: no process is started
//! here.

use crate::{Isolation, PacOptions, WorkerProcess};

/// Options shared by `eval`, `check` and `bench` that choose where the script runs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IsolationArgs {
    /// Run the script on a thread of this command instead of a pac-worker process (for
    /// profiling). No memory limit: a script that exhausts memory aborts the command.
    #[arg(long = "in-process")]
    pub in_process: bool,
    /// Address-space limit of the pac-worker process (default 512MiB, as the proxy's
    /// pac.worker_memory_limit); bytes, or with a KiB/MiB/GiB suffix.
    #[arg(
        long = "memory-limit",
        value_name = "SIZE",
        conflicts_with = "in_process"
    )]
    pub memory_limit: Option<String>,
}

impl IsolationArgs {
    /// Sets `options.isolation`; `Err` is a usage message.
    pub fn apply(&self, options: &mut PacOptions) -> Result<(), String> {
        if self.in_process {
            options.isolation = Isolation::Threads;
            return Ok(());
        }
        let mut process = WorkerProcess::current_exe().map_err(|e| {
            format!("cannot find this executable to start a pac-worker process ({e}); pass --in-process")
        })?;
        if let Some(text) = &self.memory_limit {
            process.memory_limit = parse_size(text).ok_or_else(|| {
                format!("--memory-limit {text:?}: expected bytes or a size such as 256MiB")
            })?;
            let least = WorkerProcess::MIN_MEMORY_LIMIT;
            if process.memory_limit < least {
                return Err(format!(
                    "--memory-limit {text:?} is too small for a JS engine (at least {}MiB)",
                    least >> 20
                ));
            }
        }
        options.isolation = Isolation::Process(process);
        Ok(())
    }
}

/// `536870912`, `512MiB`, `512M`, `1GiB`, `64k` (binary multiples, any case) -> bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bytes_or_binary_multiples() {
        assert_eq!(parse_size("536870912"), Some(512 << 20));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("256m"), Some(256 << 20));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        for bad in ["", "MiB", "12 parsecs", "-1G", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn scripts_run_in_a_worker_process_with_the_proxys_default_limit_unless_in_process() {
        let mut o = PacOptions::default();
        IsolationArgs::default().apply(&mut o).unwrap();
        let Isolation::Process(p) = &o.isolation else {
            panic!("{:?}", o.isolation);
        };
        assert_eq!(p.memory_limit, WorkerProcess::DEFAULT_MEMORY_LIMIT);
        assert_eq!(p.args, ["pac-worker"]);

        let small = IsolationArgs {
            memory_limit: Some("16MiB".into()),
            ..Default::default()
        };
        assert!(small.apply(&mut o).unwrap_err().contains("at least 64MiB"));
        let in_process = IsolationArgs {
            in_process: true,
            ..Default::default()
        };
        in_process.apply(&mut o).unwrap();
        assert_eq!(o.isolation, Isolation::Threads);
    }
}
