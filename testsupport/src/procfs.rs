//! What `/proc/PID/stat` says of a process: its state, its parent and the CPU time it used.
//! Tests use it to find a program's child processes, see whether one still runs (a zombie
//! waiting for its reaper has ended) and whether something keeps burning CPU.

/// The fields of `/proc/PID/stat` the tests read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    pub ppid: u32,
    /// User plus system time, in clock ticks (1/100 s here).
    pub cpu_ticks: u64,
}

impl Stat {
    /// Whether the process still runs: it exists and is neither a zombie nor dead.
    pub fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// The stat of `pid` (`"self"` too), or `None` when no such process exists.
pub fn stat(pid: impl std::fmt::Display) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text)
}

/// Whether `pid` still runs (see [`Stat::running`]).
pub fn running(pid: impl std::fmt::Display) -> bool {
    stat(pid).is_some_and(|s| s.running())
}

/// Every process whose parent is `parent`, zombies included.
pub fn children(parent: u32) -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| stat(e.file_name().to_string_lossy()))
        .filter(|s| s.ppid == parent)
        .collect()
}

/// Parses one stat line. The command name sits in parentheses and may itself contain spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse(text: &str) -> Option<Stat> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: u32::try_from(number(1)?).ok()?,
        cpu_ticks: number(11)? + number(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_skipped_whole() {
        let line = "4242 (pac (worker) x) S 17 4242 17 0 -1 4194560 120 0 0 0 33 9 0 0 20 0 3 0";
        assert_eq!(
            parse(line),
            Some(Stat {
                pid: 4242,
                state: 'S',
                ppid: 17,
                cpu_ticks: 42
            })
        );
    }

    #[test]
    fn this_process_runs_and_is_its_parents_child() {
        let me = stat("self").unwrap();
        assert_eq!(me.pid, std::process::id());
        assert!(me.running());
        let parent = stat(me.ppid).unwrap();
        assert!(children(parent.pid).iter().any(|c| c.pid == me.pid));
    }
}
