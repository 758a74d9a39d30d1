//! Where log lines go: stderr, written in batches by one thread instead of one `write(2)` per
//! line on the proxy's own threads.
//!
//! Every access line used to cost the serving thread a system call. Here a line is appended to
//! a shared buffer, and a writer thread empties the buffer to stderr at most [`FLUSH_EVERY`]
//! later, or at once when [`WAKE_AT`] bytes wait. Lines keep their order: whoever writes
//! (the writer thread, or a caller that finds [`MAX_PENDING`] bytes waiting, or a warning)
//! takes the output lock and the whole pending buffer together.
//!
//! Warnings and errors are not delayed: they go out, after everything before them, before the
//! call that logged them returns. So do all lines when stderr is a terminal (a person
//! watching). [`flush`] writes what waits (at exit, and from the panic hook).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Pending bytes that wake the writer thread early.
const WAKE_AT: usize = 32 * 1024;
/// Pending bytes beyond which the logging thread writes them itself (stderr is slow or stuck:
/// the buffer must not grow without bound).
const MAX_PENDING: usize = 1024 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
    /// The output (stderr), locked while a batch goes out, so that batches leave in the order
    /// they were taken.
    out: Mutex<Box<dyn Write + Send>>,
    /// Every line written at once (stderr is a terminal, or no writer thread).
    immediate: AtomicBool,
}

impl Shared {
    fn new(out: Box<dyn Write + Send>, immediate: bool) -> Arc<Shared> {
        Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(WAKE_AT)),
            wake: Condvar::new(),
            out: Mutex::new(out),
            immediate: AtomicBool::new(immediate),
        })
    }

    /// Starts the thread that empties the buffer; without one, lines are written by their
    /// callers.
    fn start(self: &Arc<Self>) {
        let s = self.clone();
        let started = std::thread::Builder::new()
            .name("waypost-log".into())
            .stack_size(64 * 1024)
            .spawn(move || writer_thread(&s));
        if started.is_err() {
            self.immediate.store(true, Ordering::Relaxed);
        }
    }

    /// Takes what is pending and writes it, under the output lock.
    fn drain(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }

    fn append(&self, line: &[u8], now: bool) {
        let waiting = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.extend_from_slice(line);
            p.len()
        };
        if now || self.immediate.load(Ordering::Relaxed) || waiting >= MAX_PENDING {
            self.drain();
        } else if waiting >= WAKE_AT {
            self.wake.notify_one();
        }
    }
}

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

/// The `MakeWriter` for the subscriber: starts the writer thread on first use.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

impl Sink {
    /// The process's sink (one writer thread, whatever the number of calls).
    pub fn get() -> Sink {
        let shared = SHARED
            .get_or_init(|| {
                let terminal = std::io::IsTerminal::is_terminal(&io::stderr());
                let shared = Shared::new(Box::new(io::stderr()), terminal);
                shared.start();
                shared
            })
            .clone();
        Sink { shared }
    }
}

fn writer_thread(shared: &Shared) {
    loop {
        {
            let p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            let _ = shared
                .wake
                .wait_timeout_while(p, FLUSH_EVERY, |p| p.len() < WAKE_AT);
        }
        shared.drain();
    }
}

/// Writes every waiting line now.
pub fn flush() {
    if let Some(s) = SHARED.get() {
        s.drain();
    }
}

/// One log line on its way into the sink.
pub struct Line {
    shared: Arc<Shared>,
    now: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf, self.now);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            shared: self.shared.clone(),
            now: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            shared: self.shared.clone(),
            now: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn info_lines_wait_for_the_writer_and_a_warning_takes_them_out_first_in_order() {
        let out = Captured::default();
        let shared = Shared::new(Box::new(out.clone()), false);
        shared.append(b"one\n", false);
        shared.append(b"two\n", false);
        assert_eq!(out.text(), "", "no writer thread yet: info lines wait");
        shared.append(b"warn\n", true);
        assert_eq!(out.text(), "one\ntwo\nwarn\n");
    }

    #[test]
    fn the_writer_thread_writes_waiting_lines_within_a_flush_period() {
        let out = Captured::default();
        let shared = Shared::new(Box::new(out.clone()), false);
        shared.start();
        shared.append(b"access 1\n", false);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.text().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(out.text(), "access 1\n");
    }

    #[test]
    fn a_pile_beyond_the_limit_is_written_by_the_caller() {
        let out = Captured::default();
        let shared = Shared::new(Box::new(out.clone()), false);
        let line = vec![b'x'; 4096];
        for _ in 0..(MAX_PENDING / line.len()) {
            shared.append(&line, false);
        }
        assert_eq!(out.text().len(), MAX_PENDING);
    }
}
