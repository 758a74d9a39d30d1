//! The PAC engine's integration tests, one binary (linked once) with a module per subject:
//! the command line (`cli`; `cli_hostile` for scripts that bomb or spin under it), the
//! third-party corpus, the engine and its functions, hostile scripts, and evaluation in
//! isolated worker processes.

mod common;

mod cli;
mod cli_hostile;
mod corpus;
mod engine;
mod functions;
mod hostile;
mod isolation;
mod switches;
mod tools;
mod tools_stream;
