//! The minimum data rate of a client's request body (Kestrel's `MinRequestBodyDataRate`): after
//! a grace period, the body must have come at `limits.min_request_body_rate` bytes a second on
//! average, or it is cut. Without it, a body trickled at a byte a second (never pausing long
//! enough for a pause limit) holds its client slot and an upstream connection for as long as
//! the client likes.
//!
//! Only time spent waiting for the client counts: the clock runs while a read waypost asked for
//! finds nothing from the client, and stands still while waypost is not reading (the upstream
//! is slow to take what it has, a connection is being dialled or authenticated), so a slow
//! upstream is never blamed on the client. [`allowed_wait`] is the decision as a pure value;
//! [`MinRate`] is the body wrapper that keeps the clock (tokio's, so paused-time tests drive it)
//! and counts each cut once. The 408 is [`crate::error::rescue`]'s: this module only names the
//! failure ([`cause_in`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus::IntCounter;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::config::MinDataRate;
use crate::error::{ErrorKind, ProxyError};

/// How long waypost may have waited for the client in all, once `received` bytes have come,
/// before the body is too slow: the grace period, or longer when the bytes already received
/// pay for more time at the minimum rate.
pub fn allowed_wait(min: &MinDataRate, received: u64) -> Duration {
    let rate = u64::from(min.bytes_per_second.get());
    // (received % rate) < rate <= u32::MAX, so the product stays far below u64::MAX
    let earned = Duration::from_secs(received / rate).saturating_add(Duration::from_nanos(
        (received % rate) * 1_000_000_000 / rate,
    ));
    min.grace.max(earned)
}

/// The request body came too slowly: what came, in how much waiting, against which minimum.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the client sent {received} bytes of its request body in {waited:.1?} of waiting, slower \
     than limits.min_request_body_rate ({rate} bytes/s after a {grace:?} grace period)"
)]
pub struct TooSlow {
    pub received: u64,
    pub waited: Duration,
    pub rate: u32,
    pub grace: Duration,
}

/// The slow-body failure inside `err` or its causes (a hyper error that carries the body's
/// error, a boxed body error), as the request's error.
pub fn cause_in(err: &(dyn std::error::Error + 'static)) -> Option<ProxyError> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(slow) = e.downcast_ref::<TooSlow>() {
            return Some(ProxyError::new(
                ErrorKind::RequestBodyTooSlow,
                slow.to_string(),
            ));
        }
        cur = e.source();
    }
    None
}

/// A request body held to a [`MinDataRate`]: fails with [`TooSlow`] (counted in `cuts`) once
/// the waiting time passes what the bytes received allow.
pub struct MinRate<B> {
    inner: B,
    rate: MinDataRate,
    received: u64,
    /// Time waited for the client in finished waits.
    waited: Duration,
    /// When the current wait began (the client had nothing for the last read).
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    cuts: IntCounter,
    cut: Option<TooSlow>,
}

impl<B> MinRate<B> {
    pub fn new(inner: B, rate: MinDataRate, cuts: IntCounter) -> Self {
        MinRate {
            inner,
            rate,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            cuts,
            cut: None,
        }
    }

    /// Ends the body: counted once, the same error for any later poll.
    fn cut_off(&mut self, now: Instant) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let waiting = self
            .waiting_since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let slow = TooSlow {
            received: self.received,
            waited: self.waited + waiting,
            rate: self.rate.bytes_per_second.get(),
            grace: self.rate.grace,
        };
        self.cuts.inc();
        self.timer = None;
        self.cut = Some(slow.clone());
        Poll::Ready(Some(Err(Box::new(slow))))
    }
}

impl<B> HttpBody for MinRate<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(slow) = &this.cut {
            return Poll::Ready(Some(Err(Box::new(slow.clone()))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let left = allowed_wait(&this.rate, this.received).saturating_sub(this.waited);
                let Some(deadline) = since.checked_add(left) else {
                    // beyond the clock's range: the bytes received pay for any wait
                    this.timer = None;
                    return Poll::Pending;
                };
                if now >= deadline {
                    return this.cut_off(now);
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.cut_off(Instant::now()),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += Instant::now().saturating_duration_since(since);
                }
                if let Poll::Ready(Some(Ok(frame))) = &ready {
                    if let Some(data) = frame.data_ref() {
                        this.received += data.len() as u64;
                    }
                }
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::num::NonZeroU32;

    use http_body_util::BodyExt;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;

    /// A request body the test feeds a piece at a time; it ends when the sender is dropped.
    struct Feed(mpsc::UnboundedReceiver<Bytes>);

    impl HttpBody for Feed {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    fn kestrel() -> MinDataRate {
        MinDataRate {
            bytes_per_second: NonZeroU32::new(240).unwrap(),
            grace: Duration::from_secs(5),
        }
    }

    fn guarded() -> (mpsc::UnboundedSender<Bytes>, MinRate<Feed>, IntCounter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cuts = IntCounter::new("cuts", "cuts").unwrap();
        (tx, MinRate::new(Feed(rx), kestrel(), cuts.clone()), cuts)
    }

    /// Sends `piece` bytes every `every`, `times` times, then ends the body.
    fn trickle(tx: mpsc::UnboundedSender<Bytes>, piece: usize, every: Duration, times: usize) {
        tokio::spawn(async move {
            for _ in 0..times {
                tokio::time::sleep(every).await;
                if tx.send(Bytes::from(vec![b'x'; piece])).is_err() {
                    return;
                }
            }
        });
    }

    fn slow(err: BoxError) -> TooSlow {
        err.downcast_ref::<TooSlow>()
            .unwrap_or_else(|| panic!("not a slow-body error: {err}"))
            .clone()
    }

    #[test]
    fn the_allowed_wait_is_the_grace_period_or_what_the_bytes_pay_for() {
        let r = kestrel();
        let s = Duration::from_secs;
        let table = [
            (0, s(5)),
            (1_200, s(5)),
            (2_400, s(10)),
            (2_520, Duration::from_millis(10_500)),
            (240_000, s(1_000)),
        ];
        for (received, wait) in table {
            assert_eq!(allowed_wait(&r, received), wait, "{received} bytes");
        }
        let one = MinDataRate {
            bytes_per_second: NonZeroU32::new(1).unwrap(),
            grace: s(5),
        };
        assert_eq!(allowed_wait(&one, u64::MAX), s(u64::MAX));
        let fastest = MinDataRate {
            bytes_per_second: NonZeroU32::MAX,
            grace: s(5),
        };
        assert_eq!(allowed_wait(&fastest, u64::MAX), s(4_294_967_297));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_faster_than_the_minimum_passes() {
        let (tx, body, cuts) = guarded();
        trickle(tx, 1_000, Duration::from_secs(1), 10);
        let got = body.collect().await.expect("a fast body passes").to_bytes();
        assert_eq!(got.len(), 10_000);
        assert_eq!(cuts.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_one_byte_a_second_is_cut_when_the_grace_period_ends() {
        let (tx, body, cuts) = guarded();
        trickle(tx, 1, Duration::from_secs(1), 600);
        let start = Instant::now();
        let err = body.collect().await.expect_err("a 1 B/s body is cut");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
        let slow = slow(err);
        assert!(slow.received <= 5, "{slow:?}");
        assert_eq!(cuts.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_body_that_stalls_is_cut_once_its_bytes_no_longer_pay_for_the_wait() {
        let (tx, body, cuts) = guarded();
        tx.send(Bytes::from(vec![b'x'; 2_400])).unwrap(); // 10 s at 240 B/s
        let start = Instant::now();
        let err = body.collect().await.expect_err("a stalled body is cut");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(slow(err).received, 2_400);
        assert_eq!(cuts.get(), 1);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_that_ends_within_the_grace_period_passes() {
        let (tx, body, cuts) = guarded();
        trickle(tx, 1, Duration::from_secs(1), 4);
        let got = body.collect().await.expect("ended within the grace period");
        assert_eq!(got.to_bytes().len(), 4);
        assert_eq!(cuts.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn time_waypost_spends_not_reading_is_not_held_against_the_client() {
        let (tx, mut body, cuts) = guarded();
        tx.send(Bytes::from_static(b"first")).unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        // the upstream takes a minute to accept more: waypost does not read meanwhile
        tokio::time::advance(Duration::from_secs(60)).await;
        trickle(tx, 1, Duration::from_secs(1), 3);
        let rest = body
            .collect()
            .await
            .expect("only waiting for the client counts");
        assert_eq!(rest.to_bytes().len(), 3);
        assert_eq!(cuts.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cut_body_keeps_failing_and_is_counted_once() {
        let (tx, mut body, cuts) = guarded();
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.unwrap().is_err());
        assert!(!HttpBody::is_end_stream(&body));
        assert_eq!(cuts.get(), 1);
        drop(tx);
    }

    #[test]
    fn the_cut_is_found_inside_the_errors_that_carry_it_and_answers_408() {
        #[derive(Debug, thiserror::Error)]
        #[error("error from the user's body stream")]
        struct Carrier(#[source] BoxError);
        let slow = TooSlow {
            received: 3,
            waited: Duration::from_secs(5),
            rate: 240,
            grace: Duration::from_secs(5),
        };
        let carrier = Carrier(Box::new(slow));
        let err = cause_in(&carrier).expect("found in the source chain");
        assert_eq!(err.kind, ErrorKind::RequestBodyTooSlow);
        assert_eq!(err.kind.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert!(err.detail.contains("limits.min_request_body_rate"), "{err}");
        let other = std::io::Error::other("reset");
        assert!(cause_in(&other).is_none());
    }
}
