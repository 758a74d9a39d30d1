//! Kerberos tickets from a keytab for a long-running waypost: [`KeytabTickets`] obtains a
//! ticket-granting ticket with the keytab's key into a ticket cache of its own (a private
//! directory, mode 0700) and renews it before it expires, so a sidecar needs no external
//! `kinit -k` loop and a handshake needs only a service ticket, not a new AS exchange.
//!
//! Lifecycle: a thread obtains the first ticket at once, then sleeps until two thirds of
//! the ticket's remaining life have passed (at least 10 s), obtains a new one into a fresh
//! file and renames it over the cache (a handshake reading the cache sees the old or the
//! new ticket, never half of one). A failure is retried every 10 s while the old ticket
//! stays usable; without any valid ticket the handshakes fall back to a per-handshake AS
//! exchange (sspi). The thread holds only a `Weak` and ends when the authenticator is
//! dropped (a reload), which also removes the directory.
//!
//! Needs the `gssapi` feature (MIT client-keytab initiation); the KDC comes from krb5.conf.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::ccache::{self, TicketState};

/// Retry delay after a failed renewal, and the shortest wait between renewals.
const RETRY: Duration = Duration::from_secs(10);

/// A keytab identity's ticket cache, kept valid by a renewal thread.
#[derive(Debug)]
pub struct KeytabTickets {
    keytab: PathBuf,
    principal: String,
    dir: PathBuf,
    expires: Mutex<Option<SystemTime>>,
}

impl KeytabTickets {
    /// Starts renewing tickets for `principal` (`user@REALM`) from `keytab`.
    pub fn start(keytab: &Path, principal: &str) -> std::io::Result<Arc<KeytabTickets>> {
        let dir = private_dir()?;
        let tickets = Arc::new(KeytabTickets {
            keytab: keytab.to_path_buf(),
            principal: principal.to_string(),
            dir,
            expires: Mutex::new(None),
        });
        let weak = Arc::downgrade(&tickets);
        std::thread::Builder::new()
            .name("waypost-keytab-renewal".into())
            .spawn(move || renewal_loop(weak))?;
        Ok(tickets)
    }

    fn cache_path(&self) -> PathBuf {
        self.dir.join("ccache")
    }

    /// The ticket cache (`FILE:...`) while it holds a ticket valid for at least 5 more
    /// seconds; `None` before the first ticket or after a long KDC outage.
    pub fn ccache(&self) -> Option<String> {
        let exp = (*self.expires.lock().unwrap_or_else(|e| e.into_inner()))?;
        (exp > SystemTime::now() + Duration::from_secs(5))
            .then(|| format!("FILE:{}", self.cache_path().display()))
    }

    /// The current ticket's expiry.
    pub fn expires(&self) -> Option<SystemTime> {
        *self.expires.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One renewal: a new ticket into a fresh file, renamed over the cache.
    fn renew(&self) -> Result<SystemTime, String> {
        let fresh = self.dir.join("ccache.new");
        let _ = std::fs::remove_file(&fresh);
        let name = format!("FILE:{}", fresh.display());
        obtain(&self.keytab, &self.principal, &name)?;
        let expires = match ccache::inspect(Some(&name), SystemTime::now()) {
            TicketState::Valid { expires, .. } => expires,
            other => return Err(format!("no valid ticket after the AS exchange: {other:?}")),
        };
        std::fs::rename(&fresh, self.cache_path()).map_err(|e| e.to_string())?;
        *self.expires.lock().unwrap_or_else(|e| e.into_inner()) = Some(expires);
        Ok(expires)
    }
}

impl Drop for KeytabTickets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(feature = "gssapi")]
fn obtain(keytab: &Path, principal: &str, ccache: &str) -> Result<(), String> {
    let kt = format!("FILE:{}", keytab.display());
    super::gss::obtain_from_keytab(&kt, principal, ccache).map_err(|e| e.to_string())
}

#[cfg(not(feature = "gssapi"))]
fn obtain(_keytab: &Path, _principal: &str, _ccache: &str) -> Result<(), String> {
    Err("keytab renewal needs the `gssapi` feature".into())
}

/// When to renew a ticket that expires at `expires`, seen at `now`.
fn next_renewal(now: SystemTime, expires: SystemTime) -> Duration {
    let left = expires.duration_since(now).unwrap_or(Duration::ZERO);
    (left * 2 / 3).max(RETRY)
}

fn renewal_loop(weak: Weak<KeytabTickets>) {
    loop {
        let wait = {
            let Some(t) = weak.upgrade() else { return };
            match t.renew() {
                Ok(expires) => {
                    let wait = next_renewal(SystemTime::now(), expires);
                    tracing::info!(principal = %t.principal, expires = %humantime::format_rfc3339_seconds(expires),
                        renew_in_seconds = wait.as_secs(), "Kerberos ticket obtained from the keytab");
                    wait
                }
                Err(e) => {
                    tracing::warn!(principal = %t.principal, error = %e, "cannot obtain a Kerberos ticket from the keytab; retrying in 10 s");
                    RETRY
                }
            }
        };
        // sleep in short steps so that a dropped authenticator ends the thread soon
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if weak.strong_count() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn private_dir() -> std::io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "waypost-krb5-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_after_two_thirds_of_the_remaining_life_and_never_in_a_loop() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            next_renewal(now, now + Duration::from_secs(120)),
            Duration::from_secs(80)
        );
        assert_eq!(next_renewal(now, now + Duration::from_secs(3)), RETRY);
        assert_eq!(next_renewal(now, now - Duration::from_secs(3)), RETRY);
    }
}
