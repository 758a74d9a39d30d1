//! The one stage list: [`Exchange::run`] owns the order every kind of traffic takes — loop
//! check, the last stage's own admission, decide, prepare, connect with failover, the last
//! stage — and [`LastStage`] is the value that supplies only what differs ([`super::forward`],
//! [`super::tunnel`], [`super::upgrade`], [`super::socks`]). A new rule for every request is
//! added here once, and every failure of every stage ends in the stage's `fail`, which goes
//! through [`Exchange::fail`] (request id, access line, outcome metric, one log line).

use std::future::Future;

use super::pipeline::Exchange;
use crate::error::{ErrorKind, ProxyError};
use crate::route::{ConnectPlan, Decision, Purpose};
use crate::upstream::Upstream;

/// What differs between the kinds of traffic: the last stage, and the few hooks before it.
pub trait LastStage: Send + Sized {
    /// What the path answers: an HTTP response, or nothing (SOCKS writes its own reply).
    type Answer: Send;
    /// What connecting one hop yields (a pooled connection, a tunnel, an upgrade connection).
    type Conn: Send;
    /// What the connect plan is for.
    const PURPOSE: Purpose;

    /// Checks of this kind of traffic before the decision (CONNECT ports, SNI host rules), or
    /// a hand-over that answers without deciding here (`Ok(Some(answer))`: interception).
    fn admit(&mut self, _x: &Exchange) -> Result<Option<Self::Answer>, ProxyError> {
        Ok(None)
    }

    /// The URL the decision (bypass rules, PAC) sees.
    fn url(&self, x: &Exchange) -> String;

    /// Work between the decision and the first connect (the request body: held or streamed).
    fn prepare(
        &mut self,
        _x: &Exchange,
        _decision: &Decision,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send {
        async { Ok(()) }
    }

    /// Connects one hop of the plan.
    fn connect(
        &self,
        up: &Upstream,
        plan: &ConnectPlan,
    ) -> impl Future<Output = Result<Self::Conn, ProxyError>> + Send;

    /// The last stage on the connection that won: send and respond, or answer and relay.
    fn finish(
        self,
        x: Exchange,
        conn: Self::Conn,
        plan: ConnectPlan,
    ) -> impl Future<Output = Self::Answer> + Send;

    /// Answers a failure of any stage; `route` is the hop it happened on (`-` before one).
    /// Every implementation records it through [`Exchange::fail`].
    fn fail(
        self,
        x: &Exchange,
        route: &str,
        err: ProxyError,
    ) -> impl Future<Output = Self::Answer> + Send;
}

impl Exchange {
    /// Runs `stage` through the stages, in the one order every kind of traffic takes.
    pub async fn run<S: LastStage>(self, mut stage: S) -> S::Answer {
        if self.looped() {
            return stage.fail(&self, "-", loop_error()).await;
        }
        match stage.admit(&self) {
            Ok(None) => {}
            Ok(Some(handed_over)) => return handed_over,
            Err(e) => return stage.fail(&self, "-", e).await,
        }
        let decision = match self.decide(|| stage.url(&self)).await {
            Ok(d) => d,
            Err(e) => return stage.fail(&self, "-", e).await,
        };
        if let Err(e) = stage.prepare(&self, &decision).await {
            return stage.fail(&self, "-", e).await;
        }
        let up = &self.app.upstream;
        let stage_ref = &stage;
        let connected = self
            .connect(&decision, S::PURPOSE, |plan| async move {
                stage_ref.connect(up, &plan).await
            })
            .await;
        match connected {
            Ok((conn, plan)) => stage.finish(self, conn, plan).await,
            Err((e, route)) => stage.fail(&self, &route, e).await,
        }
    }
}

/// The refusal of a request that carries this instance's `Via` token.
fn loop_error() -> ProxyError {
    ProxyError::new(
        ErrorKind::Loop,
        "this request has already passed through this waypost (its Via token came back): \
         a proxy chain or PAC leads back to waypost itself",
    )
}
