//! One loaded script in one boa `Context`: load it, call its entry point, under budgets. This is
//! the code both evaluation paths run — the in-process worker threads ([`crate::worker`]) and
//! the `pac-worker` child process ([`crate::isolate`]) — so they answer alike.
//!
//! Budgets that hold: the top level and every call run through boa's budgeted evaluation, which
//! hands control back to [`Budget::run`] every [`SLICE`] "cycles" (boa's per-opcode cost units).
//! There the wall-clock deadline, the instruction budget (all frames of the call together, so
//! `for(;;) f();` is counted) and the cancel flag are checked; when one is spent the evaluation
//! is dropped mid-flight and the context is discarded (the caller reloads). Natives called back
//! from sort comparators and `replace` callbacks run unbudgeted inside one slice; boa's
//! per-frame loop budget and the recursion limit still bound them, and in the child process
//! the parent's deadline kills.
//!
//! It does no I/O of its own: DNS goes through the [`DnsService`] in [`Shared`], alerts through
//! its sink.

use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use boa_engine::error::{EngineError, RuntimeLimitError};
use boa_engine::property::PropertyDescriptor;
use boa_engine::{js_string, Context, JsError, JsString, JsValue, Script, Source};

use crate::bindings::{self, AlertSink, ScriptEnv};
use crate::clock::{ScriptClock, ZoneHooks};
use crate::dns::DnsService;
use crate::error::{find_position, Position};
use crate::{PacError, PacOptions};

/// Boa "cycles" between two budget checks: small enough that a check happens every few tens
/// of microseconds, large enough that a light call (~20k cycles) is never interrupted.
pub(crate) const SLICE: u32 = 50_000;

/// A script version: the text and a generation number that changes on every replacement.
pub(crate) struct ScriptText {
    pub text: Arc<str>,
    pub generation: u64,
}

/// What an interpreter needs from its owner: options, DNS, the current script, the alert sink.
pub(crate) struct Shared {
    pub options: PacOptions,
    pub dns: Arc<DnsService>,
    pub script: RwLock<Arc<ScriptText>>,
    pub alerts: AlertSink,
}

impl Shared {
    pub fn current_script(&self) -> Arc<ScriptText> {
        self.script
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The names the entry-point script reads its arguments from (non-enumerable globals).
const URL_ARG: &str = "__waypost_url__";
const HOST_ARG: &str = "__waypost_host__";
const CALLER: &str = "(typeof FindProxyForURLEx === 'function' ? FindProxyForURLEx : \
                      FindProxyForURL)(__waypost_url__, __waypost_host__)";

/// A context with the script loaded, and the compiled entry-point call.
pub(crate) struct Interp {
    context: Context,
    caller: Script,
    pub generation: u64,
}

impl Interp {
    /// Builds a context with the PAC functions and runs the script's top level, within the
    /// load deadline and the instruction budget.
    pub fn load(
        shared: &Shared,
        cancel: &Arc<AtomicBool>,
        script: &ScriptText,
    ) -> Result<Interp, PacError> {
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
        context.insert_data(ScriptEnv::new(
            shared.dns.clone(),
            options,
            cancel.clone(),
            shared.alerts.clone(),
        ));
        bindings::install(&mut context).map_err(|e| internal(e.to_string()))?;
        let source = Source::from_bytes(script.text.as_bytes()).with_path(Path::new("pac.js"));
        let budget = Budget::new(options.load_timeout, options.instruction_budget, cancel);
        let ran = match Script::parse(source, None, &mut context) {
            Err(err) => Err(Some(err)),
            Ok(top) => match budget.run(top.evaluate_async_with_budget(&mut context, SLICE)) {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(Some(err)),
                Err(over) => return Err(over),
            },
        };
        if let Err(Some(err)) = ran {
            if let Some(over) = ran_too_long(&err, options) {
                return Err(over);
            }
            let (message, mut position) = describe(err, &mut context);
            if position.is_none() && message.contains("abrupt end") {
                position = Some(end_of(&script.text));
            }
            return Err(PacError::Load { message, position });
        }
        match has_entry_point(&mut context) {
            Ok(true) => {}
            Ok(false) => return Err(PacError::NoEntryPoint),
            Err(err) => {
                let (message, position) = describe(err, &mut context);
                return Err(PacError::Load { message, position });
            }
        }
        let caller = Script::parse(Source::from_bytes(CALLER), None, &mut context)
            .map_err(|e| internal(e.to_string()))?;
        tracing::debug!(elapsed = ?started.elapsed(), bytes = script.text.len(), "PAC script loaded");
        Ok(Interp {
            context,
            caller,
            generation: script.generation,
        })
    }

    /// Calls `FindProxyForURLEx` when defined, else `FindProxyForURL` (re-read each call),
    /// within the call deadline and the instruction budget. After `Err` of kind timeout the
    /// interpreter is spent: the caller drops it and loads a fresh one.
    pub fn call(
        &mut self,
        options: &PacOptions,
        cancel: &AtomicBool,
        url: &str,
        host: &str,
    ) -> Result<String, PacError> {
        let context = &mut self.context;
        if let Some(env) = context.get_data::<ScriptEnv>() {
            env.start_call(options);
        }
        if !has_entry_point(context).map_err(|e| call_error(e, context))? {
            return Err(PacError::NoEntryPoint);
        }
        let global = context.global_object();
        for (name, value) in [(URL_ARG, url), (HOST_ARG, host)] {
            let desc = PropertyDescriptor::builder()
                .value(JsValue::from(JsString::from(value)))
                .writable(true)
                .enumerable(false)
                .configurable(true);
            global
                .define_property_or_throw(JsString::from(name), desc, context)
                .map_err(|e| call_error(e, context))?;
        }
        // the caller's deadline decides (the pool abandons, the parent kills): the interpreter's
        // own clock is a backstop a little later, so the two never race
        let budget = Budget::new(options.call_timeout, options.instruction_budget, cancel)
            .with_backstop(call_backstop(options.call_timeout));
        let value = match budget.run(self.caller.evaluate_async_with_budget(context, SLICE)) {
            Ok(Ok(value)) => value,
            Ok(Err(err)) => {
                return Err(ran_too_long(&err, options).unwrap_or_else(|| call_error(err, context)))
            }
            Err(over) => return Err(over),
        };
        let raw = match value.as_string() {
            Some(s) => s.to_std_string_escaped(),
            None => {
                return Err(PacError::NotAString {
                    type_name: value.type_of().to_string(),
                })
            }
        };
        if raw.len() > options.max_result_bytes {
            return Err(PacError::ResultTooLong {
                len: raw.len(),
                limit: options.max_result_bytes,
            });
        }
        Ok(raw)
    }
}

/// boa's loop-iteration limit stops a script that runs too long, often before the deadline
/// does: that is a timeout of the script, not an error in it.
fn ran_too_long(err: &JsError, options: &PacOptions) -> Option<PacError> {
    match err.as_engine() {
        Some(EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration)) => {
            Some(PacError::LoopLimit {
                iterations: options.loop_iteration_limit,
            })
        }
        _ => None,
    }
}

fn call_error(err: JsError, context: &mut Context) -> PacError {
    let (message, position) = describe(err, context);
    PacError::Call { message, position }
}

/// Whether the global object holds a callable entry point.
fn has_entry_point(context: &mut Context) -> Result<bool, JsError> {
    let global = context.global_object();
    for name in [
        js_string!("FindProxyForURLEx"),
        js_string!("FindProxyForURL"),
    ] {
        match global.get(name, context) {
            Ok(v) if v.is_callable() => return Ok(true),
            Ok(_) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// When the interpreter stops a call on its own clock: past the caller's deadline by half of
/// it (at least 100 ms, at most 2 s), so the caller's timer — which abandons or kills the worker
/// and counts it — always fires first, and the interpreter's only covers a caller that is gone.
pub(crate) fn call_backstop(deadline: Duration) -> Duration {
    deadline + (deadline / 2).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// Limits for one budgeted evaluation.
pub(crate) struct Budget<'a> {
    started: Instant,
    /// Reported in the timeout error.
    deadline: Duration,
    /// When the wall clock stops the evaluation (the deadline unless a backstop is set).
    stop_after: Duration,
    slices: u64,
    cancel: &'a AtomicBool,
    cycles: u64,
}

impl<'a> Budget<'a> {
    pub fn new(deadline: Duration, cycles: u64, cancel: &'a AtomicBool) -> Budget<'a> {
        Budget {
            started: Instant::now(),
            deadline,
            stop_after: deadline,
            slices: cycles.div_ceil(u64::from(SLICE)).max(1),
            cancel,
            cycles,
        }
    }

    /// Stops on the wall clock only after `stop_after` (still reporting the deadline).
    pub fn with_backstop(self, stop_after: Duration) -> Budget<'a> {
        Budget { stop_after, ..self }
    }

    /// Drives `evaluation` (a boa budgeted evaluation, which yields every [`SLICE`] cycles)
    /// to completion on this thread, or drops it when a limit is spent.
    pub fn run<F: std::future::Future>(&self, evaluation: F) -> Result<F::Output, PacError> {
        let mut evaluation = std::pin::pin!(evaluation);
        let mut poll_context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut slices = 0u64;
        loop {
            if let Poll::Ready(out) = evaluation.as_mut().poll(&mut poll_context) {
                return Ok(out);
            }
            slices += 1;
            if slices >= self.slices {
                return Err(PacError::Budget {
                    cycles: self.cycles,
                });
            }
            if self.cancel.load(Ordering::Relaxed) || self.started.elapsed() >= self.stop_after {
                return Err(PacError::Timeout(self.deadline));
            }
        }
    }
}

/// Message (first line) and script position of an engine error.
pub(crate) fn describe(err: JsError, context: &mut Context) -> (String, Option<Position>) {
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
