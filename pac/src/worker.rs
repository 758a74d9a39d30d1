//! One PAC worker: a thread that owns a boa `Context` (which is `!Send`) holding the loaded
//! script, takes jobs from the engine's shared queue and answers each on its own channel.
//!
//! Lifecycle: spawned -> loads the current script -> serves jobs, reloading when the script's
//! generation changes -> exits when the queue closes, or after its current job when the engine
//! has abandoned it (deadline expired; a replacement has been started). An abandoned worker
//! cannot be pre-empted: it stops at the next PAC helper call (which throws an uncatchable
//! error), at the loop-iteration budget, or when its job ends.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use boa_engine::{js_string, Context, JsError, JsString, JsValue, Source};
use tokio::sync::oneshot;

use crate::bindings::{self, ScriptEnv};
use crate::clock::{ScriptClock, ZoneHooks};
use crate::dns::DnsService;
use crate::error::find_position;
use crate::{PacError, PacOptions};

/// A script version: the text and a generation number that changes on every replacement.
pub(crate) struct ScriptText {
    pub text: Arc<str>,
    pub generation: u64,
}

/// What workers share with the engine.
pub(crate) struct Shared {
    pub options: PacOptions,
    pub dns: Arc<DnsService>,
    pub script: RwLock<Arc<ScriptText>>,
}

impl Shared {
    pub fn current_script(&self) -> Arc<ScriptText> {
        self.script
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A worker's handle as seen by the engine.
pub(crate) struct WorkerControl {
    /// Set when the engine gives up on this worker.
    pub cancel: Arc<AtomicBool>,
}

/// One evaluation request; the ticket tells the engine which worker holds it.
pub(crate) struct Job {
    pub url: String,
    pub host: String,
    pub ticket: Arc<Ticket>,
    pub reply: oneshot::Sender<Result<String, PacError>>,
}

/// Shared between the waiting caller and the worker running the job.
#[derive(Default)]
pub(crate) struct Ticket {
    /// The worker that picked the job up.
    pub worker: Mutex<Option<Arc<WorkerControl>>>,
    /// The caller stopped waiting: skip the job if not started yet.
    pub abandoned: AtomicBool,
}

/// Starts a worker thread. `ready` receives the outcome of the first load.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    queue: crossbeam_channel::Receiver<Job>,
    ready: Option<oneshot::Sender<Result<(), PacError>>>,
) -> Arc<WorkerControl> {
    let control = Arc::new(WorkerControl {
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let theirs = control.clone();
    let spawned = std::thread::Builder::new()
        .name("waypost-pac".into())
        .stack_size(32 * 1024 * 1024)
        .spawn(move || run(shared, theirs, queue, ready));
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start a PAC worker thread");
    }
    control
}

struct Loaded {
    context: Context,
    generation: u64,
}

fn run(
    shared: Arc<Shared>,
    control: Arc<WorkerControl>,
    queue: crossbeam_channel::Receiver<Job>,
    ready: Option<oneshot::Sender<Result<(), PacError>>>,
) {
    let script = shared.current_script();
    let mut loaded = match load(&shared, &control, &script) {
        Ok(context) => {
            if let Some(ready) = ready {
                let _ = ready.send(Ok(()));
            }
            Some(Loaded {
                context,
                generation: script.generation,
            })
        }
        Err(err) => {
            if let Some(ready) = ready {
                let _ = ready.send(Err(err));
            }
            None
        }
    };
    while !control.cancel.load(Ordering::Relaxed) {
        let Ok(job) = next_job(&queue) else { break };
        if job.ticket.abandoned.load(Ordering::Relaxed) {
            continue;
        }
        *job.ticket.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(control.clone());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            serve(&shared, &control, &mut loaded, &job.url, &job.host)
        }));
        let answer = outcome.unwrap_or_else(|_| {
            loaded = None;
            Err(PacError::Call {
                message: "the JS engine panicked".into(),
                position: None,
            })
        });
        let _ = job.reply.send(answer);
    }
}

/// How long an idle worker polls the queue before parking. A parked thread takes tens of
/// microseconds to wake on a busy machine, more than a light script takes to run; a caller
/// sending its next request within this window finds the worker awake.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

fn next_job(queue: &crossbeam_channel::Receiver<Job>) -> Result<Job, crossbeam_channel::RecvError> {
    let started = Instant::now();
    loop {
        match queue.try_recv() {
            Ok(job) => return Ok(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(crossbeam_channel::RecvError)
            }
            Err(crossbeam_channel::TryRecvError::Empty) if started.elapsed() < SPIN => {
                std::thread::yield_now()
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return queue.recv(),
        }
    }
}

fn serve(
    shared: &Shared,
    control: &WorkerControl,
    loaded: &mut Option<Loaded>,
    url: &str,
    host: &str,
) -> Result<String, PacError> {
    let script = shared.current_script();
    if loaded
        .as_ref()
        .is_none_or(|l| l.generation != script.generation)
    {
        *loaded = None;
        let context = load(shared, control, &script)?;
        *loaded = Some(Loaded {
            context,
            generation: script.generation,
        });
    }
    let Some(Loaded { context, .. }) = loaded.as_mut() else {
        return Err(PacError::NoEntryPoint);
    };
    if let Some(env) = context.get_data::<ScriptEnv>() {
        env.budget.set(shared.options.dns_budget);
    }
    let result = call(context, url, host);
    if let Ok(raw) = &result {
        if raw.len() > shared.options.max_result_bytes {
            return Err(PacError::ResultTooLong {
                len: raw.len(),
                limit: shared.options.max_result_bytes,
            });
        }
    }
    result
}

/// Builds a context with the PAC functions and runs the script's top level.
pub(crate) fn load(
    shared: &Shared,
    control: &WorkerControl,
    script: &ScriptText,
) -> Result<Context, PacError> {
    let started = Instant::now();
    let options = &shared.options;
    let internal = |e: String| PacError::Load {
        message: e,
        position: None,
    };
    let hooks = ZoneHooks::new(options.time_zone.as_deref()).map_err(internal)?;
    let mut context = Context::builder()
        .host_hooks(Rc::new(hooks))
        .clock(Rc::new(ScriptClock::new(options.fixed_now_ms)))
        .build()
        .map_err(|e| internal(e.to_string()))?;
    let limits = context.runtime_limits_mut();
    limits.set_loop_iteration_limit(options.loop_iteration_limit);
    limits.set_recursion_limit(options.recursion_limit);
    context.insert_data(ScriptEnv {
        dns: shared.dns.clone(),
        budget: std::cell::Cell::new(options.dns_budget),
        cancel: control.cancel.clone(),
    });
    bindings::install(&mut context).map_err(|e| internal(e.to_string()))?;
    let source = Source::from_bytes(script.text.as_bytes()).with_path(Path::new("pac.js"));
    if let Err(err) = context.eval(source) {
        let (message, mut position) = describe(err, &mut context);
        if position.is_none() && message.contains("abrupt end") {
            position = Some(end_of(&script.text));
        }
        return Err(PacError::Load { message, position });
    }
    let global = context.global_object();
    let mut found = false;
    for name in [
        js_string!("FindProxyForURLEx"),
        js_string!("FindProxyForURL"),
    ] {
        match global.get(name, &mut context) {
            Ok(v) if v.is_callable() => found = true,
            Ok(_) => {}
            Err(err) => {
                let (message, position) = describe(err, &mut context);
                return Err(PacError::Load { message, position });
            }
        }
    }
    if !found {
        return Err(PacError::NoEntryPoint);
    }
    tracing::debug!(elapsed = ?started.elapsed(), bytes = script.text.len(), "PAC script loaded");
    Ok(context)
}

/// Calls `FindProxyForURLEx` when defined, else `FindProxyForURL`, re-reading the global first.
fn call(context: &mut Context, url: &str, host: &str) -> Result<String, PacError> {
    let global = context.global_object();
    let call_err = |(message, position)| PacError::Call { message, position };
    let mut entry = JsValue::undefined();
    for name in [
        js_string!("FindProxyForURLEx"),
        js_string!("FindProxyForURL"),
    ] {
        entry = global
            .get(name, context)
            .map_err(|e| call_err(describe(e, context)))?;
        if entry.is_callable() {
            break;
        }
    }
    let Some(function) = entry.as_callable() else {
        return Err(PacError::NoEntryPoint);
    };
    let args = [
        JsValue::from(JsString::from(url)),
        JsValue::from(JsString::from(host)),
    ];
    let value = function
        .call(&JsValue::undefined(), &args, context)
        .map_err(|e| call_err(describe(e, context)))?;
    match value.as_string() {
        Some(s) => Ok(s.to_std_string_escaped()),
        None => Err(PacError::NotAString {
            type_name: value.type_of().to_string(),
        }),
    }
}

/// Message (first line) and script position of an engine error.
fn describe(err: JsError, context: &mut Context) -> (String, Option<Position>) {
    let full = err.to_string();
    let position = find_position(&full);
    let message = match err.try_native(context) {
        Ok(native) => {
            let kind = native.kind().to_string();
            let msg = native.message().trim().to_string();
            if msg.is_empty() {
                kind
            } else {
                format!("{kind}: {msg}")
            }
        }
        Err(_) => full.lines().next().unwrap_or_default().to_string(),
    };
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    (message, position)
}

use crate::error::Position;

/// The position just past the last character (where an "abrupt end" happens).
fn end_of(text: &str) -> Position {
    let line = text.lines().count().max(1);
    let last = text.lines().last().unwrap_or("");
    let (line, column) = if text.ends_with('\n') {
        (line + 1, 1)
    } else {
        (line, last.chars().count() + 1)
    };
    Position {
        line: line as u32,
        column: column as u32,
    }
}
