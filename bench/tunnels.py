#!/usr/bin/env python3
"""Memory per idle tunnel and RSS after a burst, for one proxy process (tree).

    tunnels.py --proxy 127.0.0.1:3128 --target 127.0.0.1:8443 --pid PID
               [--count 2000] [--wait 10] [--concurrency 200]

1. RSS of PID and its descendants (bench/proctree.py) at rest, after a warm-up of 10 tunnels
   opened and closed (so the proxy has paged in the code that serves tunnels);
2. opens COUNT tunnels through the proxy (CONNECT to the HTTPS origin, a TLS handshake and
   one GET /1k inside, so both relay directions have moved bytes), at most CONCURRENCY
   setups in flight, and holds them all idle;
3. RSS again, 2 s after the last one: (held - rest) / opened = KiB per idle tunnel;
4. closes every tunnel, waits WAIT seconds, RSS again ("after the burst").

Prints one line: "TUNNELS opened=.. failed=.. rest_kib=.. held_kib=.. per_tunnel_kib=..
after_kib=.. after_ratio=..". Certificates are not verified (test CA).
"""
import argparse
import asyncio
import resource
import ssl
import sys
import time

import proctree


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return head


async def one_tunnel(proxy, target, ctx, sem, timeout):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy), timeout)
        try:
            authority = "%s:%d" % target
            writer.write(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode())
            head = await asyncio.wait_for(read_head(reader), timeout)
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise ConnectionError("CONNECT answered %s" % status.decode(errors="replace"))
            await asyncio.wait_for(writer.start_tls(ctx, server_hostname="localhost"), timeout)
            writer.write(("GET /1k HTTP/1.1\r\nHost: %s\r\n\r\n" % authority).encode())
            head = await asyncio.wait_for(read_head(reader), timeout)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), timeout)
            if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
                raise ConnectionError("GET inside the tunnel: %r" % head.split(b"\r\n", 1)[0])
        except BaseException:
            writer.close()
            raise
        return writer


async def run(a):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sem = asyncio.Semaphore(a.concurrency)
    # warm-up: a few tunnels opened and closed first, so that "rest" is a proxy that has
    # served tunnels (code paged in, buffers sized), not one fresh from its start
    warm = await asyncio.gather(
        *(one_tunnel(a.proxy, a.target, ctx, sem, a.timeout) for _ in range(min(10, a.count))),
        return_exceptions=True,
    )
    for w in warm:
        if not isinstance(w, BaseException):
            w.close()
    await asyncio.sleep(1)
    rest = proctree.rss_kib(a.pid)
    started = time.monotonic()
    results = await asyncio.gather(
        *(one_tunnel(a.proxy, a.target, ctx, sem, a.timeout) for _ in range(a.count)),
        return_exceptions=True,
    )
    writers = [r for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print("tunnels.py: %d of %d tunnels failed, first: %r" % (len(errors), a.count, errors[0]),
              file=sys.stderr)
    setup_s = time.monotonic() - started
    await asyncio.sleep(2)
    held = proctree.rss_kib(a.pid)
    for w in writers:
        w.close()
    for w in writers:
        try:
            await asyncio.wait_for(w.wait_closed(), 5)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
    await asyncio.sleep(a.wait)
    after = proctree.rss_kib(a.pid)
    per = (held - rest) / len(writers) if writers else 0.0
    print("TUNNELS opened=%d failed=%d setup_s=%.1f rest_kib=%d held_kib=%d per_tunnel_kib=%.1f "
          "after_kib=%d after_ratio=%.2f"
          % (len(writers), len(errors), setup_s, rest, held, per, after, after / rest if rest else 0))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--proxy", type=addr, required=True)
    ap.add_argument("--target", type=addr, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--wait", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < a.count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
