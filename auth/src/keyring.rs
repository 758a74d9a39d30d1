//! The system keyring as a credential source: the Linux kernel keyring.
//!
//! A password stored with `keyctl add user waypost:<user> '<password>' @u` (or in the session
//! keyring) is used when no password, file, hash or environment variable gives one. The kernel
//! keyring exists on every Linux system, including containers and headless servers, and keeps
//! the secret out of files and the environment. Elsewhere this source is simply absent.

/// The description under which waypost looks for `user`'s password.
pub fn description(user: &str) -> String {
    format!("waypost:{user}")
}

/// The password stored for `user`, searched in the user keyring, then the session keyring.
#[cfg(target_os = "linux")]
pub fn lookup(user: &str) -> Option<String> {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};
    let desc = description(user);
    for id in [KeyRingIdentifier::User, KeyRingIdentifier::Session] {
        let Ok(ring) = KeyRing::from_special_id(id, false) else {
            continue;
        };
        if let Ok(key) = ring.search(&desc) {
            if let Ok(bytes) = key.read_to_vec() {
                let text = String::from_utf8(bytes).ok()?;
                return Some(text.trim_end_matches(['\r', '\n']).to_string());
            }
        }
    }
    None
}

#[cfg(not(target_os = "linux"))]
pub fn lookup(_user: &str) -> Option<String> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};

    #[test]
    fn a_password_in_the_kernel_keyring_is_found_for_its_user() {
        let user = format!("keyring-test-{}", std::process::id());
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true).expect("user keyring");
        let key = ring
            .add_key(&super::description(&user), "Keyring-Secret-1")
            .expect("add key");
        assert_eq!(super::lookup(&user).as_deref(), Some("Keyring-Secret-1"));
        key.invalidate().expect("remove key");
        assert_eq!(super::lookup(&user), None);
    }
}
