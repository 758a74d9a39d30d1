//! Giving memory back: the pages only startup needed, and the heap a burst of connections left.
//!
//! Two things keep a quiet proxy's resident set high on Linux, and neither is memory in use:
//! - **code pages touched once**: startup (command line, configuration, TLS and resolver
//!   set-up) runs code from all over the binary and its libraries, and the kernel maps the
//!   pages around each fault too, so ~10 MiB of the executable stay mapped although serving
//!   uses a fraction of them. [`drop_clean_file_pages`] unmaps the clean, file-backed,
//!   read-only pages of the process (code and read-only data; never a page the process
//!   changed); the ones still used come back from the page cache on their next touch, at the
//!   cost of a minor fault.
//! - **freed heap not returned**: glibc keeps freed memory in its per-thread arenas, so after
//!   ten thousand tunnels close the resident set stays near its peak. [`release_free_heap`]
//!   asks glibc to hand every free page back to the kernel (`malloc_trim`).
//!
//! [`spawn`] runs both once the proxy has started, and again whenever the number of open
//! connections and tunnels has fallen well below its recent peak (a burst ended). Both are
//! measured in `bench/` (idle RSS, RSS 10 s after a burst).

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the open connections are looked at for a burst that ended.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// When startup is taken to be over (lazy set-up done) and its pages dropped.
const AFTER_START: Duration = Duration::from_secs(2);
/// A burst ended when this many connections and tunnels fewer are open than at the peak since
/// the last release.
const BURST: i64 = 32;

/// Drops the pages startup left mapped, then releases freed heap after each burst, until the
/// runtime ends.
pub fn spawn(metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        tokio::time::sleep(AFTER_START).await;
        let dropped = drop_clean_file_pages();
        let released = release_free_heap();
        tracing::debug!(dropped, released, "startup pages and free heap given back");
        let open = || metrics.client_connections_active.get() + metrics.tunnels_active.get();
        let mut peak = open();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tick.tick().await;
            let now = open();
            peak = peak.max(now);
            if peak - now >= BURST {
                let dropped = drop_clean_file_pages();
                let released = release_free_heap();
                tracing::debug!(
                    peak,
                    now,
                    dropped,
                    released,
                    "a burst ended: pages given back"
                );
                peak = now;
            }
        }
    });
}

/// Hands glibc's free heap pages back to the kernel; whether any were (false elsewhere).
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists; it has no
        // preconditions.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// One mapping of `/proc/self/smaps`: its range and whether its pages can be dropped.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Private or shared file mapping without write permission and without a single page the
    /// process changed (copy-on-write pages would lose their contents).
    droppable: bool,
}

/// The mappings of an smaps text.
fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                let perms = fields.next().unwrap_or("");
                let path = fields.nth(3).unwrap_or("");
                out.push(Mapping {
                    start,
                    end,
                    droppable: !perms.contains('w') && path.starts_with('/'),
                });
                continue;
            }
        }
        // a page of the mapping is the process's own: never drop it
        if first == "Anonymous:" && fields.next() != Some("0") {
            if let Some(m) = out.last_mut() {
                m.droppable = false;
            }
        }
    }
    out
}

/// Unmaps the clean pages of read-only file mappings (code, read-only data); returns the
/// bytes of address space advised. Linux only; nothing elsewhere.
pub fn drop_clean_file_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return 0;
        };
        let mut advised = 0;
        for m in mappings(&smaps).into_iter().filter(|m| m.droppable) {
            // SAFETY: the range is a whole mapping of this process that is read-only, backed
            // by a file and holds no anonymous (changed) page: MADV_DONTNEED only removes
            // page-table entries, and the next access reads the same bytes from the file.
            let r = unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_DONTNEED,
                )
            };
            if r == 0 {
                advised += m.end - m.start;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0850000 r--p 00000000 fe:00 123 /usr/bin/waypost
Size:               8512 kB
Rss:                4096 kB
Anonymous:             0 kB
55d0c0850000-55d0c1c60000 r-xp 00850000 fe:00 123 /usr/bin/waypost
Size:              20544 kB
Anonymous:             0 kB
55d0c1c60000-55d0c1e00000 r--p 01c60000 fe:00 123 /usr/bin/waypost
Size:               1664 kB
Anonymous:          1644 kB
55d0c1e00000-55d0c1e06000 rw-p 01e00000 fe:00 123 /usr/bin/waypost
Anonymous:            24 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0 
Anonymous:           132 kB
7fff00000000-7fff00021000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_unchanged_read_only_file_pages_are_dropped() {
        let ms = mappings(SMAPS);
        let droppable: Vec<bool> = ms.iter().map(|m| m.droppable).collect();
        // code and read-only data yes; relocated read-only data (changed pages), writable
        // data, the heap and the vdso no
        assert_eq!(droppable, [true, true, false, false, false, false]);
        assert_eq!(ms[1].start, 0x55d0c0850000);
        assert_eq!(ms[1].end, 0x55d0c1c60000);
    }

    #[test]
    fn dropping_startup_pages_leaves_the_process_working() {
        let before = std::fs::read_to_string("/proc/self/status").unwrap();
        let advised = drop_clean_file_pages();
        assert!(advised > 0, "the test binary has code pages: {before}");
        // code and read-only data still work after their pages were dropped
        let v: Vec<String> = (0..1000).map(|i| format!("{i:x}")).collect();
        assert_eq!(v[255], "ff");
        release_free_heap();
        assert_eq!(format!("{:?}", v.get(4095)), "None");
    }
}
