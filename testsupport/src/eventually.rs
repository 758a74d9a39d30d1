//! Waiting for something that happens in the background: poll it until a deadline.
//!
//! A test that sleeps and then asserts is either slow (the sleep is long) or flaky (the sleep
//! is sometimes too short on a loaded machine). [`eventually`] polls instead: it returns as
//! soon as the condition holds and waits up to a generous deadline when the machine is slow,
//! and when it gives up it says where it was called and what it saw last.
//!
//! The async form uses tokio's clock, so it also works under paused time
//! (`#[tokio::test(start_paused = true)]`): each poll interval auto-advances the clock.

use std::fmt::Debug;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

/// How long [`eventually`] and [`eventually_blocking`] wait between two observations.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Observes `observe()` every [`POLL_INTERVAL`] until `done` holds for what it returned, and
/// returns that value; panics when `within` has passed, naming the caller and printing the
/// last observation. `observe` runs at least once (also with a zero `within`) and is not
/// cancelled midway: give it its own timeout if it can hang.
///
/// ```ignore
/// let m = eventually(Duration::from_secs(5), || harness::metrics(addr), |m| {
///     metric(m, "waypost_pool_drained_bytes_total{upstream=\"direct\"}") > 0.0
/// })
/// .await;
/// ```
#[track_caller]
pub fn eventually<T, F, Fut, P>(
    within: Duration,
    mut observe: F,
    mut done: P,
) -> impl Future<Output = T>
where
    T: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
    P: FnMut(&T) -> bool,
{
    let caller = Location::caller();
    async move {
        let deadline = tokio::time::Instant::now() + within;
        let mut observations = 0u32;
        loop {
            let value = observe().await;
            observations += 1;
            if done(&value) {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                give_up(caller, within, observations, &value);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// [`eventually`] for code outside an async runtime (blocking tests, std threads): the same
/// contract, on the std clock.
#[track_caller]
pub fn eventually_blocking<T, F, P>(within: Duration, mut observe: F, mut done: P) -> T
where
    T: Debug,
    F: FnMut() -> T,
    P: FnMut(&T) -> bool,
{
    let caller = Location::caller();
    let deadline = std::time::Instant::now() + within;
    let mut observations = 0u32;
    loop {
        let value = observe();
        observations += 1;
        if done(&value) {
            return value;
        }
        if std::time::Instant::now() >= deadline {
            give_up(caller, within, observations, &value);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn give_up(caller: &Location<'_>, within: Duration, observations: u32, last: &dyn Debug) -> ! {
    panic!(
        "eventually at {caller}: the condition did not hold within {within:?} \
         ({observations} observations); last observed: {last:#?}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_value_for_which_the_condition_holds() {
        let n = Arc::new(AtomicU32::new(0));
        let got = eventually(
            Duration::from_secs(5),
            || {
                let n = n.clone();
                async move { n.fetch_add(1, Ordering::SeqCst) }
            },
            |v| *v == 3,
        )
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_on_the_tokio_clock_so_paused_time_advances_through_it() {
        let start = tokio::time::Instant::now();
        let got = eventually(
            Duration::from_secs(60),
            || async move { start.elapsed() },
            |e| *e >= Duration::from_secs(30),
        )
        .await;
        assert!(
            got >= Duration::from_secs(30) && got < Duration::from_secs(31),
            "{got:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_condition_that_never_holds_fails_naming_the_caller_and_the_last_value() {
        let failure = tokio::spawn(eventually(
            Duration::from_secs(1),
            || async { "still waiting" },
            |_| false,
        ))
        .await
        .expect_err("gives up");
        let message = failure.into_panic();
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains(file!()), "{message}");
        assert!(message.contains("within 1s"), "{message}");
        assert!(message.contains("\"still waiting\""), "{message}");
    }

    #[test]
    fn the_blocking_form_polls_until_the_condition_holds() {
        let mut n = 0;
        let got = eventually_blocking(
            Duration::from_secs(5),
            || {
                n += 1;
                n
            },
            |v| *v == 2,
        );
        assert_eq!(got, 2);
    }

    #[test]
    fn the_blocking_form_gives_up_with_the_last_value() {
        let failure =
            std::panic::catch_unwind(|| eventually_blocking(Duration::ZERO, || 41, |v| *v == 42))
                .expect_err("gives up");
        let message = failure
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains("last observed: 41"), "{message}");
    }
}
