//! waypost-pac: the PAC engine (placeholder until the PAC issue lands).
