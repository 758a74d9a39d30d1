//! Waiting hot: how a caller waits for a worker's answer. A parked thread takes tens of
//! microseconds to wake (more on a virtual machine, whose idle CPU the host has to wake too),
//! as long as a corporate script takes to run: parked on both ends, a 40 µs evaluation was
//! answered in 85 µs. So a *lone* call (no other call in flight in this engine) polls for its
//! answer for up to [`SPIN`] before it parks, yielding between polls to the kernel (a worker
//! placed on the same CPU runs) and, every [`RUNTIME_TURN`], to the runtime (the thread's
//! other tasks run). Not at every poll: a task that yields is queued where the runtime's other
//! thread is woken to steal it, so the spin hopped between threads and each hop woke one (a
//! light brz-proxy call through the worker process: 6-34 µs by round instead of 5). When
//! calls queue, waiters park at once: the cores are needed for the scripts. The workers poll
//! for their next job the same way ([`crate::worker`], [`crate::isolate::child`]); the process
//! pool polls its worker's pipe with its own reads ([`crate::isolate::wire::FrameReader`]).
//! Figures: `pac/README.md`, "Waiting hot".
//!
//! The clock here is `std`'s, not tokio's: a spin must end in real time, also under a paused
//! test clock.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// The longest a lone caller polls before it parks: past the corpus scripts' evaluation
/// times (2-100 µs), so a typical call never parks; a script slower than this pays the
/// wake-up, which is then a small part of its time.
pub(crate) const SPIN: Duration = Duration::from_micros(200);

/// How often a spinning waiter lets the rest of its runtime thread's tasks run: a light call
/// is answered before its first turn; a lone heavy one holds back its thread's other tasks no
/// longer than this.
pub(crate) const RUNTIME_TURN: Duration = Duration::from_micros(50);

/// One call in flight, counted in its engine's counter while it lives.
pub(crate) struct InFlight<'a> {
    count: &'a AtomicUsize,
}

impl<'a> InFlight<'a> {
    pub fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight { count }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a waiter polls for its answer (the caller of the thread pool, the supervisor of a
/// worker process): [`SPIN`] while its call is the only one in flight, else nothing.
pub(crate) fn spin_for(count: &AtomicUsize) -> Duration {
    if count.load(Ordering::Relaxed) <= 1 {
        SPIN
    } else {
        Duration::ZERO
    }
}

/// Awaits `future`, polling it again after each yield to the runtime for up to `spin`, then
/// parks like any await. For futures woken without the I/O driver (channels); a pipe needs
/// its own non-blocking reads ([`crate::isolate::wire::FrameReader`]).
pub(crate) async fn wait<F: Future>(future: F, spin: Duration) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut turns = Spin::new(spin);
    loop {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = polled {
            return out;
        }
        if !turns.going() {
            return future.await;
        }
        turns.pause().await;
    }
}

/// The turns of one spin of at most `limit`.
pub(crate) struct Spin {
    started: Instant,
    limit: Duration,
    next_turn: Duration,
}

impl Spin {
    pub fn new(limit: Duration) -> Spin {
        Spin {
            started: Instant::now(),
            limit,
            next_turn: RUNTIME_TURN,
        }
    }

    /// Still within the limit: poll again (after [`Spin::pause`]).
    pub fn going(&self) -> bool {
        self.started.elapsed() < self.limit
    }

    /// Between two polls: the other runnable threads on this CPU run (the worker may share
    /// it: the kernel places a woken thread where it likes), and every [`RUNTIME_TURN`] the
    /// thread's other tasks (tokio's yield, which also polls the I/O driver when this thread
    /// holds it).
    pub async fn pause(&mut self) {
        std::thread::yield_now();
        let elapsed = self.started.elapsed();
        if elapsed >= self.next_turn {
            self.next_turn = elapsed + RUNTIME_TURN;
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_that_starts_alone_spins_and_the_count_returns_to_zero() {
        let count = AtomicUsize::new(0);
        {
            let _first = InFlight::enter(&count);
            assert_eq!(spin_for(&count), SPIN);
            let _second = InFlight::enter(&count);
            assert_eq!(spin_for(&count), Duration::ZERO);
        }
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_hot_wait_gets_an_answer_sent_while_it_spins_and_one_sent_after_it_parked() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || tx.send(7));
        assert_eq!(wait(rx, SPIN).await, Ok(7));
        sender.join().unwrap().unwrap();
        // a zero spin parks at once: the answer still arrives through the waker
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = tokio::spawn(async move { tx.send(8) });
        assert_eq!(wait(rx, Duration::ZERO).await, Ok(8));
        sender.await.unwrap().unwrap();
    }
}
