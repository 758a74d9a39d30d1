//! Evaluation isolated from the proxy: `options.workers` child processes of the proxy's own
//! binary (`waypost pac-worker`, see [`child`]), each supervised by one task here. A script
//! that exhausts memory, spins or crashes the interpreter takes down only its worker; the
//! supervisor names the reason (memory, deadline, crash), counts it, answers the call with
//! [`PacError::WorkerKilled`] and starts a replacement.
//!
//! Supervisor lifecycle (one per worker slot):
//! Starting (spawn + `Init`, within the load deadline) -> Idle -> Busy (one call; DNS and
//! alerts relayed) -> Idle | Dead (killed at the call deadline, or died) -> Starting.
//! A new script moves every Idle worker to Loading (`Load` frame) -> Idle; a job taken up
//! while a new script is pending waits for that load (a job is never run by a replaced
//! script, whatever order `select!` picked the two events in). After a failed
//! start the slot waits [`RETRY`] before trying again and answers calls with the error.
//! When the engine is dropped the job queue closes, supervisors end and their children are
//! killed (`kill_on_drop`); if the proxy itself dies, their stdin closes and they exit.
//!
//! A *lone* call (no other in flight) does not go through the queue: it borrows an idle,
//! up-to-date worker from its [`Slot`] and talks to it from the caller's own task, waiting hot
//! ([`crate::hot`]). Handed to a supervisor task and back, the call cost two wake-ups of
//! runtime threads (tokio moves the two tasks between its threads), each as long as a light
//! script's run on this kind of machine; on the caller's task it costs none. What the
//! supervisor would do on a failure happens there too (the kill named and counted, the slot
//! emptied, its supervisor told to start a replacement), and a caller that gives up mid-call
//! leaves the rest of the exchange to a task of its own, so the worker is never left
//! half-spoken-to. Queued calls, reloads, network changes and restarts stay the supervisor's;
//! a supervisor that takes a queued call while its worker is lent puts the call back for
//! another slot and waits for its worker before it takes the next.

pub(crate) mod child;
pub(crate) mod wire;

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedMutexGuard};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::{Backend, BoxFuture, Evaluated};
use crate::error::KillReason;
use crate::interp::{ScriptText, Shared};
use crate::metrics::Metrics;
use crate::options::WorkerProcess;
use crate::PacError;
use wire::{FromWorker, ToWorker, WorkerOptions};

pub use child::{worker_main, worker_main_with};

/// Pause before a slot tries again after its worker failed to start.
const RETRY: Duration = Duration::from_secs(1);
/// How long the caller waits past the call deadline for the supervisor's verdict (which names
/// a kill), before answering a plain timeout itself.
const VERDICT_GRACE: Duration = Duration::from_millis(500);

struct Job {
    url: String,
    host: String,
    deadline: Instant,
    reply: oneshot::Sender<Result<Evaluated, PacError>>,
}

/// One worker slot: its process (`None` while it is started, or after it died) and the
/// network generation (`State::network`) that process has been told. Locked by its supervisor
/// for everything it does, and by a lone caller for one call.
struct Slot {
    worker: Option<Worker>,
    network: u64,
}

struct SlotCell {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// A caller emptied the slot (its worker died during a call): the supervisor starts another.
    emptied: Notify,
}

struct State {
    shared: Arc<Shared>,
    process: WorkerProcess,
    metrics: Metrics,
    script: watch::Sender<Arc<ScriptText>>,
    jobs: tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>,
    /// Puts back a job its supervisor cannot run now (its worker is lent to a lone caller),
    /// for another slot; weak, so that dropping the engine still closes the queue.
    requeue: mpsc::WeakUnboundedSender<Job>,
    live: AtomicUsize,
    /// Calls in flight (queued or running): a lone one is waited for hot ([`crate::hot`]).
    in_flight: AtomicUsize,
    /// Bumped on every network change: each worker is sent the new local addresses before
    /// its next call.
    network: watch::Sender<u64>,
    slots: Vec<SlotCell>,
}

/// The process backend.
pub(crate) struct ProcessPool {
    jobs: mpsc::UnboundedSender<Job>,
    state: Arc<State>,
}

impl ProcessPool {
    /// Starts `workers` supervised processes and waits until each has loaded the script.
    pub async fn start(
        shared: Arc<Shared>,
        process: WorkerProcess,
        metrics: Metrics,
    ) -> Result<ProcessPool, PacError> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let script = shared.current_script();
        let workers = shared.options.workers.max(1);
        let state = Arc::new(State {
            shared,
            process,
            metrics,
            script: watch::channel(script).0,
            jobs: tokio::sync::Mutex::new(rx),
            requeue: jobs.downgrade(),
            live: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            network: watch::channel(0).0,
            slots: (0..workers)
                .map(|_| SlotCell {
                    slot: Arc::new(tokio::sync::Mutex::new(Slot {
                        worker: None,
                        network: 0,
                    })),
                    emptied: Notify::new(),
                })
                .collect(),
        });
        let mut ready = Vec::new();
        for index in 0..workers {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(supervise(state.clone(), index, Some(tx)));
            ready.push(rx);
        }
        let pool = ProcessPool { jobs, state };
        for rx in ready {
            rx.await.map_err(|_| PacError::Shutdown)??;
        }
        Ok(pool)
    }
}

impl Backend for ProcessPool {
    fn replace(&self, candidate: Arc<ScriptText>) -> BoxFuture<'_, Result<(), PacError>> {
        Box::pin(async move {
            // a probe process loads it first: a hostile new script costs only the probe
            let probe = Worker::start(&self.state, &candidate).await?;
            drop(probe);
            *self
                .state
                .shared
                .script
                .write()
                .unwrap_or_else(|p| p.into_inner()) = candidate.clone();
            self.state.script.send_replace(candidate);
            Ok(())
        })
    }

    fn eval<'a>(
        &'a self,
        url: &'a str,
        host: &'a str,
    ) -> BoxFuture<'a, Result<Evaluated, PacError>> {
        Box::pin(async move {
            let call_timeout = self.state.shared.options.call_timeout;
            let _flight = crate::hot::InFlight::enter(&self.state.in_flight);
            if !crate::hot::spin_for(&self.state.in_flight).is_zero() {
                if let Some(answer) = eval_here(&self.state, url, host).await {
                    return answer;
                }
            }
            let (reply, rx) = oneshot::channel();
            let job = Job {
                url: url.to_string(),
                host: host.to_string(),
                deadline: Instant::now() + call_timeout,
                reply,
            };
            self.state.metrics.queue_depth.inc();
            if self.jobs.send(job).is_err() {
                self.state.metrics.queue_depth.dec();
                return Err(PacError::Shutdown);
            }
            match tokio::time::timeout(call_timeout + VERDICT_GRACE, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(PacError::Shutdown),
                Err(_) => Err(PacError::Timeout(call_timeout)),
            }
        })
    }

    fn workers(&self) -> usize {
        self.state.live.load(Ordering::Relaxed)
    }

    fn network_changed(&self) {
        self.state.network.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One worker slot: keeps a process up to date with the script and runs queued jobs on it.
async fn supervise(
    state: Arc<State>,
    index: usize,
    mut ready: Option<oneshot::Sender<Result<(), PacError>>>,
) {
    let cell = &state.slots[index];
    let mut script_rx = state.script.subscribe();
    let mut failed: Option<(Instant, PacError)> = None;
    // whether this slot is counted in `state.live`
    let mut counted = false;
    // a job taken up while a new script was pending (or the worker was gone): it runs after
    // the reload (or the restart)
    let mut pending: Option<Job> = None;
    loop {
        let script = script_rx.borrow_and_update().clone();
        let mut slot = cell.slot.lock().await;
        let stale = slot.worker.as_ref().map(|w| w.generation) != Some(script.generation);
        let may_try = failed.as_ref().is_none_or(|(at, _)| at.elapsed() >= RETRY);
        if stale && may_try {
            // a fresh process gets the current addresses in its Init
            let network = *state.network.borrow();
            let fresh = slot.worker.is_none();
            let outcome = match slot.worker.take() {
                Some(w) => w.reload(&state, &script).await,
                None => Worker::start(&state, &script).await,
            };
            match outcome {
                Ok(w) => {
                    if failed.take().is_some() || ready.is_none() {
                        tracing::info!("PAC worker process (re)started");
                    }
                    slot.worker = Some(w);
                    if fresh {
                        slot.network = network;
                    }
                    if !counted {
                        counted = true;
                        state.live.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Err(err) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(err));
                        return;
                    }
                    tracing::warn!(error = %err, "cannot start a PAC worker process; retrying");
                    failed = Some((Instant::now(), err));
                }
            }
        }
        if slot.worker.is_some() != counted {
            counted = slot.worker.is_some();
            if counted {
                state.live.fetch_add(1, Ordering::Relaxed);
            } else {
                state.live.fetch_sub(1, Ordering::Relaxed);
            }
        }
        drop(slot);
        let retry_at = failed.as_ref().map(|(at, _)| *at + RETRY);
        let job = match pending.take() {
            Some(job) => job,
            None => {
                let job = tokio::select! {
                    job = async { state.jobs.lock().await.recv().await } => match job {
                        Some(job) => job,
                        None => return,
                    },
                    _ = script_rx.changed() => continue,
                    _ = sleep_until(retry_at) => continue,
                    _ = cell.emptied.notified() => continue,
                };
                state.metrics.queue_depth.dec();
                if script_rx.has_changed().unwrap_or(false) {
                    pending = Some(job);
                    continue;
                }
                job
            }
        };
        let mut slot = match cell.slot.clone().try_lock_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // lent to a lone caller: another slot may be free; this one takes jobs again
                // once its worker is back
                match state.requeue.upgrade() {
                    Some(queue) => {
                        state.metrics.queue_depth.inc();
                        if let Err(back) = queue.send(job) {
                            state.metrics.queue_depth.dec();
                            pending = Some(back.0);
                        }
                    }
                    None => pending = Some(job),
                }
                drop(cell.slot.lock().await);
                continue;
            }
        };
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() >= job.deadline {
            let _ = job
                .reply
                .send(Err(PacError::Timeout(state.shared.options.call_timeout)));
            continue;
        }
        if slot.worker.is_none() {
            match &failed {
                // a lone caller's call killed it meanwhile: restart, then run the job
                None => pending = Some(job),
                Some((_, err)) => {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
            continue;
        }
        let answer = eval_on(&state, &mut slot, job.url, job.host, job.deadline).await;
        drop(slot);
        let _ = job.reply.send(answer);
    }
}

/// Runs one call on the slot's worker (telling it a changed network first); a worker that
/// dies in it is buried and the slot emptied.
async fn eval_on(
    state: &State,
    slot: &mut Slot,
    url: String,
    host: String,
    deadline: Instant,
) -> Result<Evaluated, PacError> {
    let Some(w) = slot.worker.as_mut() else {
        return Err(PacError::Shutdown);
    };
    let network = *state.network.borrow();
    if slot.network != network {
        slot.network = network;
        let my_ip = state.shared.dns.my_ips();
        if let Err(reason) = w.tell(state, ToWorker::Network { my_ip }).await {
            slot.worker = None;
            return Err(PacError::WorkerKilled(reason));
        }
    }
    let generation = w.generation;
    let limit = state.shared.options.call_timeout;
    let answer = match w
        .exchange(state, ToWorker::Eval { url, host }, deadline, limit)
        .await
    {
        Ok(FromWorker::Answer(answer)) => answer.map(|raw| Evaluated { raw, generation }),
        Ok(_) => {
            let reason = KillReason::Crash {
                status: "it broke the worker protocol".into(),
            };
            Err(PacError::WorkerKilled(w.bury(state, reason).await))
        }
        Err(reason) => Err(PacError::WorkerKilled(reason)),
    };
    if matches!(answer, Err(PacError::WorkerKilled(_))) {
        slot.worker = None;
    }
    answer
}

/// A lone call on the caller's task: borrows the first idle worker that is up to date with the
/// script (`None`: none is, the call goes through the queue). If the caller is dropped
/// mid-call, a task of its own finishes the exchange and gives the worker back.
async fn eval_here(
    state: &Arc<State>,
    url: &str,
    host: &str,
) -> Option<Result<Evaluated, PacError>> {
    let generation = state.script.borrow().generation;
    let (index, slot) = state.slots.iter().enumerate().find_map(|(i, cell)| {
        let slot = cell.slot.clone().try_lock_owned().ok()?;
        let current = slot.worker.as_ref()?.generation == generation;
        current.then_some((i, slot))
    })?;
    let limit = state.shared.options.call_timeout;
    let deadline = Instant::now() + limit;
    let call = borrowed_call(
        state.clone(),
        index,
        slot,
        url.to_string(),
        host.to_string(),
        deadline,
    );
    let mut call = FinishOnDrop(Some(Box::pin(call)));
    let polled = std::future::poll_fn(|cx| match call.0.as_mut() {
        Some(f) => f.as_mut().poll(cx),
        None => std::task::Poll::Ready(Err(PacError::Shutdown)),
    });
    // as a queued call: answered by the deadline's verdict, or a plain timeout soon after
    match tokio::time::timeout(limit + VERDICT_GRACE, polled).await {
        Ok(answer) => {
            call.0 = None;
            Some(answer)
        }
        Err(_) => Some(Err(PacError::Timeout(limit))),
    }
}

async fn borrowed_call(
    state: Arc<State>,
    index: usize,
    mut slot: OwnedMutexGuard<Slot>,
    url: String,
    host: String,
    deadline: Instant,
) -> Result<Evaluated, PacError> {
    let answer = eval_on(&state, &mut slot, url, host, deadline).await;
    let emptied = slot.worker.is_none();
    drop(slot);
    if emptied {
        state.slots[index].emptied.notify_one();
    }
    answer
}

type Call =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Evaluated, PacError>> + Send>>;

/// A borrowed call not polled to its end is finished by a task of its own.
struct FinishOnDrop(Option<Call>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(call) = self.0.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = call.await;
                });
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A running worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: wire::FrameReader<ChildStdout>,
    /// Ends with the process's stderr; true when it reported a failed allocation.
    stderr: Option<JoinHandle<bool>>,
    generation: u64,
}

impl Worker {
    /// Spawns a process and loads `script` into it (within the load deadline).
    async fn start(state: &State, script: &ScriptText) -> Result<Worker, PacError> {
        let process = &state.process;
        let mut command = tokio::process::Command::new(&process.program);
        command
            .args(&process.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .current_dir("/")
            .kill_on_drop(true);
        if let Some(tz) = std::env::var_os("TZ") {
            command.env("TZ", tz);
        }
        let mut child = command.spawn().map_err(|e| PacError::Load {
            message: format!(
                "cannot start the PAC worker process {}: {e}",
                process.program.display()
            ),
            position: None,
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(PacError::Shutdown);
        };
        let mut worker = Worker {
            child,
            stdin,
            stdout: wire::FrameReader::new(stdout),
            stderr: Some(tokio::spawn(watch_stderr(stderr))),
            generation: script.generation,
        };
        let init = ToWorker::Init {
            options: Box::new(worker_options(state)),
            script: script.text.to_string(),
            generation: script.generation,
        };
        worker.load(state, init).await?;
        Ok(worker)
    }

    /// Loads a new script into this process.
    async fn reload(mut self, state: &State, script: &ScriptText) -> Result<Worker, PacError> {
        let load = ToWorker::Load {
            script: script.text.to_string(),
            generation: script.generation,
        };
        self.load(state, load).await?;
        self.generation = script.generation;
        Ok(self)
    }

    async fn load(&mut self, state: &State, message: ToWorker) -> Result<(), PacError> {
        let timeout = state.shared.options.load_timeout;
        match self
            .exchange(state, message, Instant::now() + timeout, timeout)
            .await
        {
            Ok(FromWorker::Loaded(result)) => result,
            Ok(_) => Err(PacError::Load {
                message: format!(
                    "the PAC worker process {} does not speak the worker protocol (is it waypost?)",
                    state.process.program.display()
                ),
                position: None,
            }),
            Err(reason) => Err(PacError::WorkerKilled(reason)),
        }
    }

    /// Sends a message that has no reply (within the load deadline).
    async fn tell(&mut self, state: &State, message: ToWorker) -> Result<(), KillReason> {
        let send = async {
            self.stdin.write_all(&wire::encode(&message)).await?;
            self.stdin.flush().await
        };
        let limit = state.shared.options.load_timeout;
        let reason = match tokio::time::timeout(limit, send).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => self.death_reason(state).await,
            Err(_) => KillReason::Deadline(limit),
        };
        Err(self.bury(state, reason).await)
    }

    /// Sends `message` and relays DNS and alerts until the worker's reply, within `deadline`.
    /// `Err`: the worker is dead (killed at the deadline, or died) and counted.
    async fn exchange(
        &mut self,
        state: &State,
        message: ToWorker,
        deadline: Instant,
        limit: Duration,
    ) -> Result<FromWorker, KillReason> {
        let talk = async {
            self.stdin.write_all(&wire::encode(&message)).await?;
            self.stdin.flush().await?;
            let mut alerts = 0u32;
            loop {
                let spin = crate::hot::spin_for(&state.in_flight);
                let body = self.stdout.next(wire::MAX_FROM_WORKER, spin).await?;
                match wire::decode::<FromWorker>(&body).map_err(std::io::Error::other)? {
                    FromWorker::Resolve(name) => {
                        let ips = state.shared.dns.lookup_for_worker(&name).await;
                        self.stdin
                            .write_all(&wire::encode(&ToWorker::Dns(ips)))
                            .await?;
                        self.stdin.flush().await?;
                    }
                    FromWorker::Alert(line) => {
                        alerts += 1;
                        if alerts <= state.shared.options.alert_max_per_call {
                            (state.shared.alerts)(&line);
                        }
                    }
                    reply => return Ok::<_, std::io::Error>(reply),
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline, talk).await;
        let reason = match outcome {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err(_)) => self.death_reason(state).await,
            Err(_) => KillReason::Deadline(limit),
        };
        Err(self.bury(state, reason).await)
    }

    /// Why the process ended (its pipe closed or broke).
    async fn death_reason(&mut self, state: &State) -> KillReason {
        let status = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        let out_of_memory = match self.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_millis(500), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false),
            None => false,
        };
        if out_of_memory {
            return KillReason::Memory {
                limit: state.process.memory_limit,
            };
        }
        let status = match status {
            Ok(Ok(status)) => status.to_string(),
            _ => "it stopped answering".to_string(),
        };
        KillReason::Crash { status }
    }

    /// Kills the process (if still running), counts the reason and returns it.
    async fn bury(&mut self, state: &State, reason: KillReason) -> KillReason {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        state
            .metrics
            .worker_kills
            .with_label_values(&[reason.label()])
            .inc();
        state.metrics.worker_restarts.inc();
        tracing::warn!(
            reason = reason.label(),
            "PAC worker process {reason}; starting a replacement"
        );
        reason
    }
}

/// Reads the worker's stderr to its end, logging each line (cut); true when a line says an
/// allocation failed (the process hit its memory limit).
async fn watch_stderr(stderr: tokio::process::ChildStderr) -> bool {
    let mut lines = BufReader::new(stderr).lines();
    let mut out_of_memory = false;
    let mut logged = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("memory allocation of") || line.contains("out of memory") {
            out_of_memory = true;
        }
        if logged < 16 {
            logged += 1;
            let end = line.char_indices().nth(300).map_or(line.len(), |(i, _)| i);
            tracing::warn!(target: "waypost_pac::worker", "{}", &line[..end]);
        }
    }
    out_of_memory
}

fn worker_options(state: &State) -> WorkerOptions {
    let o = &state.shared.options;
    WorkerOptions {
        memory_limit: state.process.memory_limit,
        load_timeout: o.load_timeout,
        call_timeout: o.call_timeout,
        max_result_bytes: o.max_result_bytes,
        loop_iteration_limit: o.loop_iteration_limit,
        instruction_budget: o.instruction_budget,
        recursion_limit: o.recursion_limit,
        dns_budget: o.dns_budget,
        dns_cache_ttl: o.dns_cache_ttl,
        dns_negative_ttl: o.dns_negative_ttl,
        dns_cache_size: o.dns_cache_size,
        my_ip: state.shared.dns.my_ips(),
        dns_fixed: o.dns_fixed.clone(),
        fixed_now_ms: o.fixed_now_ms,
        time_zone: o.time_zone.clone(),
        alert_max_bytes: o.alert_max_bytes,
        alert_max_per_call: o.alert_max_per_call,
        alert_max_per_second: o.alert_max_per_second,
    }
}
