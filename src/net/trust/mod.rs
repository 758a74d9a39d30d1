//! Which network may have the user's credentials, decided by proof rather than by names.
//!
//! On a network waypost does not control, whoever runs it controls DHCP, DNS, routing and every
//! host: it can claim the corporate domain and the corporate proxy's name and serve any WPAD
//! script. Only cryptography tells the corporate network apart. So a network (the identity
//! [`crate::net`] tracks) is *proven* when the user's Kerberos realm answers a fresh TGS
//! request from it ([`waypost_auth::proof`]), or when the configured `auth.trust_probe` URL is
//! fetched over HTTPS with a verified certificate. Until then, and when neither succeeds,
//! proxies named by the network (a WPAD or `http://` script) get no credential of any kind
//! ([`waypost_auth::policy::Policy::grant`] applies the rule; this module only finds the fact).
//!
//! One proof per network: it runs when the network changes (and at start), bounded by
//! [`PROOF_TIMEOUT`]; an unproven network is asked again every [`RETRY_UNPROVEN`] (a KDC that
//! was briefly unreachable). Requests that need no credentials never wait for it; a request
//! that would send credentials to a network-named proxy waits for the pending proof only.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::net::NetworkId;

/// The longest one proof may take (KDC and probe run side by side).
pub const PROOF_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often an unproven network is asked again.
pub const RETRY_UNPROVEN: Duration = Duration::from_secs(60);

/// What is known about the network the machine is on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing needs a proof (no PAC source, or the user trusts network-named proxies by
    /// name or sends credentials anywhere).
    NotNeeded,
    /// The proof for this network is running.
    Pending { network: String },
    /// Decided for `network` at `at`: `how` says by what (or why not).
    Decided {
        network: String,
        proven: bool,
        how: String,
        at: SystemTime,
    },
}

impl Verdict {
    pub fn proven(&self) -> bool {
        matches!(self, Verdict::Decided { proven: true, .. })
    }

    /// One line for `explain`, the status page and logs.
    pub fn describe(&self) -> String {
        match self {
            Verdict::NotNeeded => "not needed (no network-named proxy depends on it)".into(),
            Verdict::Pending { .. } => "being proven".into(),
            Verdict::Decided {
                proven, how, at, ..
            } => format!(
                "{} at {} ({how})",
                if *proven { "proven" } else { "not proven" },
                humantime::format_rfc3339_seconds(*at)
            ),
        }
    }
}

/// Fetches a URL over verified HTTPS (the seam to the HTTP client, which lives above this
/// module): Ok once an answer came, Err with the reason.
pub type Fetch = Arc<
    dyn Fn(
            String,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// How a network is proven: the realm's KDC with the user's ticket cache, and/or an HTTPS URL.
pub struct Prover {
    /// `Some(cache)`: prove with this ticket cache (`Some(None)`: the default cache).
    pub ccache: Option<Option<String>>,
    /// The KDC to ask instead of the realm's own (`auth.kdc`).
    pub kdc: Option<String>,
    /// `auth.trust_probe` and what fetches it (with the TLS policy's verification).
    pub probe: Option<(String, Fetch)>,
}

/// Something that proves the network the machine is on now: (proven, by what or why not).
pub trait Prove: Send + Sync + 'static {
    fn prove(&self) -> impl std::future::Future<Output = (bool, String)> + Send;
}

impl Prove for Prover {
    async fn prove(&self) -> (bool, String) {
        let kdc = async {
            let Some(ccache) = self.ccache.clone() else {
                return (
                    false,
                    "the identity has no ticket cache to prove with".to_string(),
                );
            };
            let kdc = self.kdc.clone();
            let run = tokio::task::spawn_blocking(move || {
                waypost_auth::proof::prove_realm(ccache.as_deref(), kdc.as_deref(), PROOF_TIMEOUT)
            });
            match run.await {
                Ok(p) => (p.is_proven(), p.describe()),
                Err(e) => (false, format!("the proof failed: {e}")),
            }
        };
        let probe = async {
            let Some((url, fetch)) = &self.probe else {
                return (false, String::new());
            };
            let shown = crate::redact::url(url);
            // any answer proves it: the certificate was verified before a byte was read
            match tokio::time::timeout(PROOF_TIMEOUT, fetch(url.clone())).await {
                Ok(Ok(_)) => (true, format!("{shown} answered over verified HTTPS")),
                Ok(Err(e)) => (false, format!("trust probe: {e}")),
                Err(_) => (
                    false,
                    format!("trust probe {shown}: no answer within {PROOF_TIMEOUT:?}"),
                ),
            }
        };
        let ((k_ok, k_how), (p_ok, p_how)) = tokio::join!(kdc, probe);
        match (k_ok, p_ok) {
            (true, _) => (true, k_how),
            (false, true) => (true, p_how),
            _ if p_how.is_empty() => (false, k_how),
            _ => (false, format!("{k_how}; {p_how}")),
        }
    }
}

/// The network's trust, kept up to date by a task that follows the network.
pub struct Trust {
    /// The verdict and the network it is about (the very value the network watch published).
    verdict: watch::Sender<(Option<Arc<NetworkId>>, Verdict)>,
    /// The network now: a verdict about any other network counts as pending.
    network: Option<watch::Receiver<Arc<NetworkId>>>,
    /// Ends the follower when this generation's trust is dropped.
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Trust {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Trust {
    /// A trust that is never needed (no PAC, or no proof asked for).
    pub fn not_needed() -> Arc<Trust> {
        Arc::new(Trust {
            verdict: watch::channel((None, Verdict::NotNeeded)).0,
            network: None,
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Starts proving each network `network` moves to; ends with the last `Trust` handle or
    /// `shutdown`.
    pub fn start(
        prover: impl Prove,
        network: watch::Receiver<Arc<NetworkId>>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Arc<Trust> {
        let first = network.borrow().clone();
        let pending = Verdict::Pending {
            network: first.fingerprint(),
        };
        let stop = shutdown.child_token();
        let trust = Arc::new(Trust {
            verdict: watch::channel((Some(first), pending)).0,
            network: Some(network.clone()),
            stop: stop.clone(),
        });
        // outside a runtime nothing proves the network: it stays pending, which is not proven
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(follow(Arc::downgrade(&trust), prover, network, stop));
        }
        trust
    }

    /// The verdict about the network the machine is on now (one about a network it has just
    /// left is pending: the follower has not caught up yet).
    pub fn verdict(&self) -> Verdict {
        let state = self.verdict.borrow();
        self.current(&state)
    }

    fn current(&self, state: &(Option<Arc<NetworkId>>, Verdict)) -> Verdict {
        match (self.is_current(state), &self.network) {
            (false, Some(now)) => Verdict::Pending {
                network: now.borrow().fingerprint(),
            },
            _ => state.1.clone(),
        }
    }

    /// Whether `state` is about the network the machine is on now.
    fn is_current(&self, (about, _): &(Option<Arc<NetworkId>>, Verdict)) -> bool {
        match (&self.network, about) {
            (Some(now), Some(about)) => Arc::ptr_eq(&now.borrow(), about),
            _ => true,
        }
    }

    /// Asked for every plan: no clone, no allocation.
    pub fn proven(&self) -> bool {
        let state = self.verdict.borrow();
        self.is_current(&state) && state.1.proven()
    }

    /// The verdict once the running proof (if any) has ended: at most about [`PROOF_TIMEOUT`].
    pub async fn decided(&self) -> Verdict {
        let mut rx = self.verdict.subscribe();
        let wait = rx.wait_for(|state| {
            self.is_current(state) && !matches!(state.1, Verdict::Pending { .. })
        });
        let decided = match tokio::time::timeout(PROOF_TIMEOUT + Duration::from_secs(1), wait).await
        {
            Ok(Ok(state)) => Some(self.current(&state)),
            _ => None,
        };
        decided.unwrap_or_else(|| self.verdict())
    }
}

async fn follow(
    trust: std::sync::Weak<Trust>,
    prover: impl Prove,
    mut network: watch::Receiver<Arc<NetworkId>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let about = network.borrow_and_update().clone();
        let id = about.fingerprint();
        {
            let Some(t) = trust.upgrade() else { return };
            t.verdict.send_replace((
                Some(about.clone()),
                Verdict::Pending {
                    network: id.clone(),
                },
            ));
        }
        // a change during the proof starts it again for the new network
        let bounded =
            tokio::time::timeout(PROOF_TIMEOUT + Duration::from_millis(500), prover.prove());
        let (proven, how) = tokio::select! {
            r = bounded => r.unwrap_or_else(|_| (false, format!("no proof within {PROOF_TIMEOUT:?}"))),
            _ = network.changed() => continue,
            _ = shutdown.cancelled() => return,
        };
        let Some(t) = trust.upgrade() else { return };
        let (_, previous) = t.verdict.send_replace((
            Some(about),
            Verdict::Decided {
                network: id.clone(),
                proven,
                how: how.clone(),
                at: SystemTime::now(),
            },
        ));
        let same_as_before =
            matches!(&previous, Verdict::Decided { proven: p, .. } if *p == proven);
        drop(t);
        if proven {
            tracing::info!(network = %id, "network proven ({how}): Kerberos may go to the proxies its PAC script names");
        } else if !same_as_before {
            tracing::info!(
                network = %id,
                "network not proven ({how}): no credential goes to proxies named by a WPAD or http:// PAC script here; \
                 a Kerberos ticket reaching the realm's KDC, or auth.trust_probe, proves a network \
                 (auth.network_trust = \"names\" trusts proxy names instead, unsafely)"
            );
        }
        let retry = if proven { None } else { Some(RETRY_UNPROVEN) };
        tokio::select! {
            r = network.changed() => if r.is_err() { return },
            _ = async {
                match retry {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests;
