//! Credentials that follow their password file: [`LiveCredentials`] holds the current
//! [`Credentials`] and, when they came from `password_file`, re-reads that file before a
//! handshake once its modification time, size or inode changed. A user who changes the
//! password (or a secret manager that rotates the file) needs no restart: the next new
//! handshake uses the new password; connections already authenticated stay as they are.
//!
//! A file that became unreadable (removed mid-rotation, wrong mode) keeps the last good
//! password and is reported once per change, without the secret. Only the stat is done per
//! handshake; the file is read only when it changed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::credentials::{read_private_file, Credentials, Secret};

/// What tells a rewritten file apart: modification time, size, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

struct State {
    creds: Arc<Credentials>,
    /// The stamp of the file the current password was read from (or last seen).
    seen: Option<Stamp>,
}

/// The current credentials of one identity.
pub struct LiveCredentials {
    file: Option<PathBuf>,
    state: Mutex<State>,
}

impl std::fmt::Debug for LiveCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCredentials")
            .field("file", &self.file)
            .finish()
    }
}

impl LiveCredentials {
    /// `creds` as loaded; `password_file` is the file their password came from, if any.
    pub fn new(creds: Credentials, password_file: Option<PathBuf>) -> Self {
        let seen = password_file.as_deref().and_then(stamp);
        LiveCredentials {
            file: password_file,
            state: Mutex::new(State {
                creds: Arc::new(creds),
                seen,
            }),
        }
    }

    /// The credentials as they are now (no file check).
    pub fn current(&self) -> Arc<Credentials> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .creds
            .clone()
    }

    /// The password file, when the password comes from one.
    pub fn password_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Re-reads the password file if it changed since it was last read; true when the
    /// password was replaced. Called before each new handshake.
    pub fn refresh(&self) -> bool {
        let Some(path) = &self.file else {
            return false;
        };
        let now = stamp(path);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now == state.seen {
            return false;
        }
        state.seen = now;
        match read_private_file(path) {
            Ok(password) => {
                let mut creds = (*state.creds).clone();
                if creds.replace_secret(Secret::Password(password)) {
                    state.creds = Arc::new(creds);
                    tracing::info!(file = %path.display(), "the password file changed: new handshakes use the new password");
                    return true;
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "the password file cannot be read; the last password read stays in use");
                false
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn a_rewritten_password_file_replaces_the_password_and_a_broken_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        write(&path, "Old-Pass-1\n");
        let live = LiveCredentials::new(
            Credentials::with_password("u", "Old-Pass-1"),
            Some(path.clone()),
        );
        assert!(!live.refresh(), "unchanged file: nothing read");
        // a replacement by rename, as editors and secret managers do
        let tmp = dir.path().join("pw.new");
        write(&tmp, "New-Pass-2-longer\n");
        std::fs::rename(&tmp, &path).unwrap();
        assert!(live.refresh());
        assert_eq!(live.current().password(), Some("New-Pass-2-longer"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&path, "Leaked-Pass-3\n").unwrap();
        assert!(!live.refresh());
        assert_eq!(live.current().password(), Some("New-Pass-2-longer"));
    }
}
