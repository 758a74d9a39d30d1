//! Many evaluations at once, results in input order: each item is first admitted, one after
//! another in input order (the caller waits there for a free worker, so calls start in input
//! order), then its work runs as a task (so the whole worker pool is busy), and the tasks'
//! handles queue in a bounded channel that the consumer drains from the front. At most `width`
//! tasks wait beyond the one being awaited, so a list of any length runs in bounded memory, and
//! the first result is handed over as soon as it is known — with a pipe as input, while the
//! pipe is still being written.

use std::future::Future;

use tokio::sync::mpsc;

/// For every item received from `items`, awaits `admit(&item)` (one item after another),
/// then runs `work(item, admission)` as a task, up to `width` tasks at a time; hands the
/// results to `sink` in the order the items came.
pub(crate) async fn in_order<I, P, T, A, AFut, W, Fut>(
    mut items: mpsc::Receiver<I>,
    width: usize,
    mut admit: A,
    work: W,
    mut sink: impl FnMut(T),
) where
    A: FnMut(&I) -> AFut,
    AFut: Future<Output = P>,
    W: Fn(I, P) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(width.max(1));
    let feed = async move {
        while let Some(item) = items.recv().await {
            let admission = admit(&item).await;
            if tx.send(tokio::spawn(work(item, admission))).await.is_err() {
                return;
            }
        }
    };
    let drain = async {
        while let Some(task) = rx.recv().await {
            match task.await {
                Ok(result) => sink(result),
                // a task panicked: a bug here, not in the script; say so and go on
                Err(e) => eprintln!("error: an evaluation task failed: {e}"),
            }
        }
    };
    tokio::join!(feed, drain);
}

/// Sends `items` into a channel on a task of their own (for inputs read whole).
pub(crate) fn feed<I: Send + 'static>(items: Vec<I>) -> mpsc::Receiver<I> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        for item in items {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn results_come_in_input_order_whatever_order_the_work_finishes_in() {
        let items = feed((0..20u64).collect());
        let mut seen = Vec::new();
        in_order(
            items,
            4,
            |_| async {},
            |i, ()| async move {
                // later items finish first
                tokio::time::sleep(Duration::from_millis(100 - i * 5)).await;
                i
            },
            |i| seen.push(i),
        )
        .await;
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn work_runs_concurrently_up_to_the_width() {
        let items = feed((0..8u64).collect());
        let started = tokio::time::Instant::now();
        let mut n = 0;
        in_order(
            items,
            8,
            |_| async {},
            |_, ()| tokio::time::sleep(Duration::from_secs(1)),
            |()| n += 1,
        )
        .await;
        assert_eq!(n, 8);
        // one after another would take 8 s
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn items_are_admitted_one_after_another_in_input_order() {
        let items = feed((0..10u64).collect());
        let admitted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = admitted.clone();
        in_order(
            items,
            4,
            move |&i| {
                let seen = seen.clone();
                async move {
                    // admissions that take longer for early items still keep the order
                    tokio::time::sleep(Duration::from_millis(50 - i * 5)).await;
                    seen.lock().unwrap().push(i);
                }
            },
            |_, ()| async {},
            |()| {},
        )
        .await;
        assert_eq!(*admitted.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }
}
