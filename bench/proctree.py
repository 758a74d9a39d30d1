#!/usr/bin/env python3
"""Memory and CPU of a process together with its descendants, from /proc (Linux).

    proctree.py rss PID    # KiB: VmRSS summed over PID and its descendants
    proctree.py hwm PID    # KiB: VmHWM (peak RSS) summed the same way
    proctree.py cpu PID    # CPU seconds (utime + stime) of the live tree, plus what PID
                           # reaped from children that have exited (cutime + cstime)
    proctree.py pids PID   # the pids of the tree

A proxy is often more than one process: squid's auth helpers, waypost's PAC workers
(pac.isolation = "process"), px's workers. Summing the tree is what the machine pays.
Also imported by bench/tunnels.py.
"""
import os
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    return text[text.rindex(")") + 2:].split()


def tree(pid):
    """pid and every live descendant (zombies left out)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = _stat_fields(int(name))
        except (OSError, ValueError):
            continue
        if f[0] == "Z":
            continue
        children.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid, key="VmRSS"):
    return sum(status_kib(p, key) for p in tree(pid))


def _live_threads(p):
    """(ticks, ns) of the live threads of process p: utime + stime from each thread's stat,
    and CPU time from each thread's schedstat (ns; None when the kernel has no schedstat)."""
    ticks, ns = 0, 0
    try:
        tids = os.listdir("/proc/%d/task" % p)
    except OSError:
        return 0, None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (p, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%d/task/%s/schedstat" % (p, tid)) as f:
                t_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0, None
        ticks += int(fields[11]) + int(fields[12])
        ns += t_ns
    return ticks, ns


def cpu_seconds(pid):
    """CPU seconds of the live tree. A process's utime + stime (10 ms ticks) include its exited
    threads (a thread-per-connection proxy's are most of it); its live threads are counted
    exactly instead (schedstat, ns), since ticks are too coarse for a 0.1 s relay. The root's
    reaped children (cutime + cstime) are added in ticks."""
    seconds = 0.0
    for p in tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        total_ticks = int(f[11]) + int(f[12])
        live_ticks, live_ns = _live_threads(p)
        if live_ns is None:
            seconds += total_ticks / CLK_TCK
        else:
            seconds += max(total_ticks - live_ticks, 0) / CLK_TCK + live_ns / 1e9
        if p == pid:
            seconds += (int(f[13]) + int(f[14])) / CLK_TCK
    return seconds


def cpu_seconds_ticks(pid):
    ticks = 0
    for p in tree(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        # fields after comm: [0]=state ... utime=[11] stime=[12] cutime=[13] cstime=[14]
        ticks += int(f[11]) + int(f[12])
        if p == pid:
            ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def main():
    what, pid = sys.argv[1], int(sys.argv[2])
    if what == "rss":
        print(rss_kib(pid))
    elif what == "hwm":
        print(rss_kib(pid, "VmHWM"))
    elif what == "cpu":
        print("%.4f" % cpu_seconds(pid))
    elif what == "pids":
        print(" ".join(map(str, tree(pid))))
    else:
        sys.exit("usage: proctree.py rss|hwm|cpu|pids PID")


if __name__ == "__main__":
    main()
