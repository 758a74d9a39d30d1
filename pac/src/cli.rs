//! The `waypost pac` command (placeholder).
