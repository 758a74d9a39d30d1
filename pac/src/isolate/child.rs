//! The worker process (`waypost pac-worker`): reads frames on stdin, runs [`crate::interp`],
//! writes frames on stdout. It lives under limits set on itself before any script runs: an
//! address-space limit (RLIMIT_AS: an allocation past it aborts this process, never the proxy),
//! no core dumps, and — after the first load — no new file descriptors (RLIMIT_NOFILE = 3: no
//! file or socket can be opened). DNS questions go to the proxy.
//!
//! It ends when the proxy closes its stdin (also when the proxy dies: the pipe closes). A call
//! that is running then stops at the interpreter's backstop (1.5x the call deadline), its
//! answer cannot be written, and the process exits. (PR_SET_PDEATHSIG is not used: it follows
//! the *thread* that spawned the child, and tokio may retire that thread while the proxy lives
//! on.)
//!
//! It logs nothing itself: `alert()` lines travel to the proxy as frames; stderr carries only
//! the runtime's own last words (an allocation failure or a panic), which the proxy reads to
//! name the reason of a death.

use std::io::{BufReader, Stdin, Stdout};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::dns::DnsService;
use crate::interp::{Interp, ScriptText, Shared};
use crate::isolate::wire::{self, FromWorker, ToWorker, WorkerOptions};
use crate::metrics::Metrics;
use crate::{PacError, PacOptions};

/// Exit status: the proxy closed the pipe (normal end).
const EXIT_DONE: i32 = 0;
/// Exit status: protocol or pipe error.
const EXIT_PROTOCOL: i32 = 3;

/// The stdin/stdout pair, shared by the serve loop and the DNS callback.
struct Pipe {
    /// Reads of 64 KiB: larger than `Stdin`'s own buffer, which they bypass, so what is
    /// buffered is visible here.
    input: Mutex<BufReader<Stdin>>,
    output: Stdout,
}

/// How long a worker that has nothing buffered polls its pipe before blocking in `read`. The
/// proxy's next frame (the next call, a DNS answer) often comes within it, and a process asleep
/// in `read` takes tens of microseconds to wake — more than a light script takes to run. The
/// in-process workers poll their queue the same way ([`crate::worker`]).
const SPIN: Duration = Duration::from_micros(50);

impl Pipe {
    fn read(&self) -> std::io::Result<ToWorker> {
        let mut input = self.input.lock().unwrap_or_else(|p| p.into_inner());
        if input.buffer().is_empty() {
            spin_until_readable(input.get_ref());
        }
        let body = wire::read_blocking(&mut *input, wire::MAX_TO_WORKER)?;
        wire::decode(&body).map_err(std::io::Error::other)
    }

    fn write(&self, message: &FromWorker) -> std::io::Result<()> {
        wire::write_blocking(&mut self.output.lock(), message)
    }
}

/// Polls `input` without blocking until it is readable or [`SPIN`] has passed.
fn spin_until_readable(input: &Stdin) {
    let started = Instant::now();
    while started.elapsed() < SPIN {
        let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => std::thread::yield_now(),
            _ => return,
        }
    }
}

/// Entry point of `waypost pac-worker` (and `waypost-pac pac-worker`). Returns the exit status.
/// Not meant to be run by hand: it expects the proxy's frames on stdin.
pub fn worker_main() -> i32 {
    worker_main_with(|| {})
}

/// As [`worker_main`], calling `after_load` once the first script is loaded, before the worker
/// closes its access to files (the proxy gives back the pages loading left behind).
pub fn worker_main_with(after_load: fn()) -> i32 {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let pipe = Arc::new(Pipe {
        input: Mutex::new(BufReader::with_capacity(64 * 1024, std::io::stdin())),
        output: std::io::stdout(),
    });
    let spawned = std::thread::Builder::new()
        .name("waypost-pac-worker".into())
        .stack_size(crate::worker::STACK_SIZE)
        .spawn(move || serve(pipe, after_load));
    match spawned.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        _ => EXIT_PROTOCOL,
    }
}

fn serve(pipe: Arc<Pipe>, after_load: fn()) -> i32 {
    let Ok(ToWorker::Init {
        options,
        script,
        generation,
    }) = pipe.read()
    else {
        eprintln!("waypost pac-worker: expected an Init frame from the proxy on stdin");
        return EXIT_PROTOCOL;
    };
    if let Err(e) = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_AS,
        options.memory_limit,
        options.memory_limit,
    ) {
        eprintln!("waypost pac-worker: cannot set the memory limit: {e}");
        return EXIT_PROTOCOL;
    }
    let shared = shared(&options, &pipe, script, generation);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut interp = None;
    let loaded = load(&shared, &cancel, &mut interp);
    after_load();
    // the zone data and everything else the runtime reads is open now: no more files
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 3, 3);
    if pipe.write(&FromWorker::Loaded(loaded)).is_err() {
        return EXIT_PROTOCOL;
    }
    loop {
        let message = match pipe.read() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return EXIT_DONE,
            Err(_) => return EXIT_PROTOCOL,
        };
        let reply = match message {
            ToWorker::Eval { url, host } => {
                FromWorker::Answer(call(&shared, &cancel, &mut interp, &url, &host))
            }
            ToWorker::Load { script, generation } => {
                *shared.script.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ScriptText {
                    text: script.into(),
                    generation,
                });
                FromWorker::Loaded(load(&shared, &cancel, &mut interp))
            }
            ToWorker::Dns(_) => continue,
            ToWorker::Network { my_ip } => {
                shared.dns.set_my_ips(my_ip);
                continue;
            }
            ToWorker::Init { .. } => return EXIT_PROTOCOL,
        };
        if pipe.write(&reply).is_err() {
            return EXIT_PROTOCOL;
        }
    }
}

fn load(
    shared: &Shared,
    cancel: &Arc<AtomicBool>,
    interp: &mut Option<Interp>,
) -> Result<(), PacError> {
    *interp = None;
    let script = shared.current_script();
    *interp = Some(Interp::load(shared, cancel, &script)?);
    Ok(())
}

fn call(
    shared: &Shared,
    cancel: &Arc<AtomicBool>,
    interp: &mut Option<Interp>,
    url: &str,
    host: &str,
) -> Result<String, PacError> {
    if interp.is_none() {
        load(shared, cancel, interp)?;
    }
    let Some(loaded) = interp.as_mut() else {
        return Err(PacError::NoEntryPoint);
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loaded.call(&shared.options, cancel, url, host)
    }));
    let panicked = outcome.is_err();
    let result = outcome.unwrap_or_else(|_| {
        Err(PacError::Call {
            message: "the JS engine panicked".into(),
            position: None,
        })
    });
    if panicked
        || matches!(
            result,
            Err(PacError::Timeout(_) | PacError::Budget { .. } | PacError::LoopLimit { .. })
        )
    {
        // dropped mid-flight or panicked: this context is spent
        *interp = None;
    }
    result
}

/// The worker's view of the engine: the options it was given, DNS through the proxy, alerts
/// as frames.
fn shared(options: &WorkerOptions, pipe: &Arc<Pipe>, script: String, generation: u64) -> Shared {
    let o = PacOptions {
        workers: 1,
        load_timeout: options.load_timeout,
        call_timeout: options.call_timeout,
        max_result_bytes: options.max_result_bytes,
        loop_iteration_limit: options.loop_iteration_limit,
        instruction_budget: options.instruction_budget,
        recursion_limit: options.recursion_limit,
        dns_budget: options.dns_budget,
        dns_cache_ttl: options.dns_cache_ttl,
        dns_negative_ttl: options.dns_negative_ttl,
        dns_cache_size: options.dns_cache_size,
        my_ip: options.my_ip.clone(),
        dns_fixed: options.dns_fixed.clone(),
        no_dns: true,
        fixed_now_ms: options.fixed_now_ms,
        time_zone: options.time_zone.clone(),
        alert_max_bytes: options.alert_max_bytes,
        alert_max_per_call: options.alert_max_per_call,
        alert_max_per_second: options.alert_max_per_second,
        ..PacOptions::default()
    };
    let ask = pipe.clone();
    let dns = DnsService::new(&o, Metrics::new(None)).with_remote(Box::new(move |name: &str| {
        ask.write(&FromWorker::Resolve(name.to_string())).ok()?;
        match ask.read().ok()? {
            ToWorker::Dns(ips) => ips,
            _ => None,
        }
    }));
    let tell = pipe.clone();
    Shared {
        options: o,
        dns: Arc::new(dns),
        script: RwLock::new(Arc::new(ScriptText {
            text: script.into(),
            generation,
        })),
        alerts: Arc::new(move |line: &str| {
            let _ = tell.write(&FromWorker::Alert(line.to_string()));
        }),
    }
}
