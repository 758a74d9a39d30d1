#!/usr/bin/env python3
"""CPU time of a client command, for the CPU columns of bench/run.sh (issue 25).

    cputime.py --out FILE -- CMD [ARGS...]

Runs CMD (its stdout and stderr pass through, its exit status is ours) and writes to FILE the
CPU seconds (user + system) it used: the kernel's account of the child, from wait4's rusage
(microseconds; a `/proc/PID/stat` reading before exit would count in 10 ms ticks). The proxy's
side is bench/proctree.py's `cpu` (its process tree, read before and after the same run), so
the client's work and the proxy's are reported side by side.
"""
import os
import sys


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[0] != "--out" or args[2] != "--":
        sys.exit("usage: cputime.py --out FILE -- CMD [ARGS...]")
    out, cmd = args[1], args[3:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w") as f:
        f.write("%.6f\n" % (usage.ru_utime + usage.ru_stime))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
