#!/usr/bin/env python3
"""Load generator and peers for bench/soak.sh (asyncio, one process per role).

  soak.py echo   --port P                 TCP echo server (the CONNECT target)
  soak.py origin --port P                 HTTP/1.1 keep-alive origin: 1 KiB per GET
  soak.py tunnels --proxy H:P --target H:P --count N --pid PID [--idle N]
        opens N CONNECT tunnels (200 at a time), checks each echoes, holds them all, measures
        the proxy process (RSS, fds), closes them, waits for the fds to return; then the same
        for N idle client connections (no request). Prints KEY=VALUE lines.
  soak.py mixed --proxy H:P --origin H:P --target H:P --pid PID --minutes M --out FILE
        M minutes of keep-alive GETs (32 workers) and short CONNECT tunnels (8 workers, each
        10 echo round trips); every 10 s one TSV row: time, RSS, fds, requests, errors,
        p50/p99 ms of that window. Prints KEY=VALUE totals.
"""
import argparse
import asyncio
import os
import resource
import sys
import time

PAYLOAD = b"x" * 1024


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return head.decode("latin-1")


# --- peers -------------------------------------------------------------------------------------

async def serve_echo(port):
    async def handle(r, w):
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


async def serve_origin(port):
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PAYLOAD) + PAYLOAD

    async def handle(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if not head:
                    break
                w.write(reply)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# --- 10,000 tunnels ----------------------------------------------------------------------------

async def open_tunnel(proxy, target):
    host, port = proxy
    r, w = await asyncio.open_connection(host, port)
    w.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = await asyncio.wait_for(read_head(r), 30)
    if not head.startswith("HTTP/1.1 200"):
        w.close()
        raise RuntimeError(head.split("\r\n")[0])
    w.write(b"ping")
    got = await asyncio.wait_for(r.readexactly(4), 30)
    if got != b"ping":
        raise RuntimeError("echo mismatch")
    return r, w


async def wait_for(cond, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.25)
    return cond()


async def tunnels(args):
    raise_nofile()
    proxy = (args.proxy.split(":")[0], int(args.proxy.split(":")[1]))
    pid = args.pid
    base_rss, base_fds = proc_rss_kb(pid), proc_fds(pid)
    print(f"BASE_RSS_KB={base_rss}\nBASE_FDS={base_fds}", flush=True)
    held, errors = [], []
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            try:
                held.append(await open_tunnel(proxy, args.target))
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                errors.append(repr(e))

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    setup = time.monotonic() - started
    await asyncio.sleep(2)  # let the proxy settle before reading its memory
    rss, fds = proc_rss_kb(pid), proc_fds(pid)
    # every held tunnel still echoes
    late = 0
    for r, w in held[:: max(1, len(held) // 500)]:
        try:
            w.write(b"pong")
            if await asyncio.wait_for(r.readexactly(4), 10) != b"pong":
                late += 1
        except Exception:  # noqa: BLE001
            late += 1
    print(f"TUNNELS_HELD={len(held)}\nTUNNEL_ERRORS={len(errors)}\nTUNNEL_SETUP_S={setup:.1f}")
    print(f"TUNNELS_RECHECK_ERRORS={late}")
    print(f"HELD_RSS_KB={rss}\nHELD_FDS={fds}")
    if held:
        print(f"PER_TUNNEL_KB={(rss - base_rss) / len(held):.1f}")
    if errors:
        print("FIRST_ERRORS=" + "; ".join(sorted(set(errors))[:5]))
    for _, w in held:
        w.close()
    held.clear()
    back = await wait_for(lambda: proc_fds(pid) <= base_fds, 60)
    print(f"AFTER_FDS={proc_fds(pid)}\nFDS_BACK_TO_BASELINE={int(back)}")
    print(f"AFTER_RSS_KB={proc_rss_kb(pid)}", flush=True)

    # idle client connections: accepted, no request yet
    idle_base = proc_rss_kb(pid)
    conns, idle_errors = [], 0
    for _ in range(args.idle):
        try:
            conns.append(await asyncio.open_connection(*proxy))
        except OSError:
            idle_errors += 1
    await wait_for(lambda: proc_fds(pid) >= base_fds + len(conns), 30)
    await asyncio.sleep(1)
    idle_rss = proc_rss_kb(pid)
    print(f"IDLE_CONNS={len(conns)}\nIDLE_ERRORS={idle_errors}\nIDLE_RSS_KB={idle_rss}")
    if conns:
        print(f"PER_IDLE_CONN_KB={(idle_rss - idle_base) / len(conns):.1f}")
    for _, w in conns:
        w.close()
    back = await wait_for(lambda: proc_fds(pid) <= base_fds, 60)
    print(f"IDLE_AFTER_FDS={proc_fds(pid)}\nIDLE_FDS_BACK_TO_BASELINE={int(back)}", flush=True)


# --- mixed load ----------------------------------------------------------------------------------

class Window:
    def __init__(self):
        self.lat, self.errors, self.first_errors = [], 0, []

    def ok(self, seconds):
        self.lat.append(seconds)

    def fail(self, e):
        self.errors += 1
        if len(self.first_errors) < 3:
            self.first_errors.append(repr(e))


def pct(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


async def mixed(args):
    raise_nofile()
    proxy = (args.proxy.split(":")[0], int(args.proxy.split(":")[1]))
    stop_at = time.monotonic() + args.minutes * 60
    win = Window()
    totals = {"requests": 0, "errors": 0}
    first_errors = []

    async def http_worker():
        nonlocal win
        r = w = None
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                if w is None:
                    r, w = await asyncio.open_connection(*proxy)
                w.write(f"GET http://{args.origin}/1k HTTP/1.1\r\nHost: {args.origin}\r\n\r\n".encode())
                head = await asyncio.wait_for(read_head(r), 30)
                if not head.startswith("HTTP/1.1 200"):
                    raise RuntimeError(head.split("\r\n")[0])
                length = next(int(l.split(":")[1]) for l in head.split("\r\n")
                              if l.lower().startswith("content-length:"))
                await asyncio.wait_for(r.readexactly(length), 30)
                win.ok(time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001
                win.fail(e)
                if w is not None:
                    w.close()
                r = w = None

    async def tunnel_worker():
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                r, w = await open_tunnel(proxy, args.target)
                for _ in range(10):
                    w.write(PAYLOAD)
                    await asyncio.wait_for(r.readexactly(len(PAYLOAD)), 30)
                w.close()
                win.ok(time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001
                win.fail(e)

    async def sampler(out):
        nonlocal win
        start = time.monotonic()
        out.write("seconds\trss_kb\tfds\trequests\terrors\tp50_ms\tp99_ms\n")
        while time.monotonic() < stop_at:
            await asyncio.sleep(10)
            w, win = win, Window()
            totals["requests"] += len(w.lat)
            totals["errors"] += w.errors
            first_errors.extend(w.first_errors)
            row = (f"{time.monotonic() - start:.0f}\t{proc_rss_kb(args.pid)}\t{proc_fds(args.pid)}\t"
                   f"{len(w.lat)}\t{w.errors}\t{pct(w.lat, 0.5):.2f}\t{pct(w.lat, 0.99):.2f}")
            out.write(row + "\n")
            out.flush()
            print(row, file=sys.stderr, flush=True)

    with open(args.out, "w") as out:
        await asyncio.gather(
            sampler(out),
            *(http_worker() for _ in range(32)),
            *(tunnel_worker() for _ in range(8)),
        )
    print(f"MIXED_REQUESTS={totals['requests']}\nMIXED_ERRORS={totals['errors']}")
    if first_errors:
        print("MIXED_FIRST_ERRORS=" + "; ".join(first_errors[:5]))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("echo", "origin"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
    s = sub.add_parser("tunnels")
    s.add_argument("--proxy", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--idle", type=int, default=10000)
    s.add_argument("--pid", type=int, required=True)
    s = sub.add_parser("mixed")
    s.add_argument("--proxy", required=True)
    s.add_argument("--origin", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--minutes", type=float, default=10)
    s.add_argument("--out", required=True)
    a = p.parse_args()
    raise_nofile()
    if a.cmd == "echo":
        asyncio.run(serve_echo(a.port))
    elif a.cmd == "origin":
        asyncio.run(serve_origin(a.port))
    elif a.cmd == "tunnels":
        asyncio.run(tunnels(a))
    else:
        asyncio.run(mixed(a))


if __name__ == "__main__":
    main()
