//! Basic: `base64(user ":" password)` in UTF-8, one leg. Only ever built from an
//! explicitly configured password (never a hash, never single sign-on).

use base64::Engine;

use super::{MechError, MechErrorKind, Mechanism, Step};
use crate::credentials::Credentials;
use crate::scheme::Mech;

pub struct BasicMech {
    encoded: Vec<u8>,
    sent: bool,
}

impl BasicMech {
    pub fn new(creds: &Credentials) -> Option<Self> {
        let user = creds.basic_user()?;
        let password = creds.password()?;
        Some(BasicMech {
            encoded: format!("{user}:{password}").into_bytes(),
            sent: false,
        })
    }

    /// The header token (base64), for tests that look for it in logs.
    pub fn header_token(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }
}

impl Mechanism for BasicMech {
    fn step(&mut self, input: Option<&[u8]>) -> Result<Step, MechError> {
        if self.sent || input.is_some() {
            return Err(MechError::new(
                Mech::Basic,
                MechErrorKind::Failed,
                "Basic has a single leg",
            ));
        }
        self.sent = true;
        Ok(Step {
            token: std::mem::take(&mut self.encoded),
            complete: true,
        })
    }
}
