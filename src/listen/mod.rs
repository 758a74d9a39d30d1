//! Listening: the proxy, admin and SOCKS5 listeners ([`server`]: bound, or inherited by
//! socket activation, connection caps, shutdown and draining) and the service manager's side
//! of it ([`systemd`]: `LISTEN_FDS`, `sd_notify`). It accepts connections and hands each to
//! [`crate::proxy`]; it decides nothing about a request.

pub mod server;
pub mod systemd;
