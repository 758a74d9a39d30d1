//! Operating waypost: the admin surface ([`admin`]: `/metrics`, `/healthz`, `/readyz`,
//! `/status`, `/explain`, `/proxy.pac`), readiness ([`ready`]), the status page ([`status`]),
//! `explain` ([`explain`]), memory figures ([`memory`]), hot reload ([`reload`]), and what
//! points clients at the proxy ([`clientpac`]: `/proxy.pac`; [`clientenv`]: `waypost env`).
//! It reads the running [`crate::app::App`]; nothing on the request path imports it except
//! the admin requests the proxy port answers.

pub mod access;
pub mod admin;
pub mod clientenv;
pub mod clientpac;
pub mod doctor;
pub mod explain;
pub mod memory;
pub mod ready;
pub mod reload;
pub mod status;
