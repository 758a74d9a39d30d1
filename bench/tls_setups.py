#!/usr/bin/env python3
"""Count completed TLS handshakes per second to a target, directly or through an HTTP
proxy's CONNECT (a new proxy connection, CONNECT, then the TLS handshake each time).

    tls_setups.py --target 127.0.0.1:8443 [--proxy 127.0.0.1:3128] [--seconds 5] [--procs 2]
                  [--proxy-authorization "Basic ..."]

Prints "TLS setups_per_s=.. ok=.. errors=..". Certificates are not verified (test CA).
"""
import argparse
import multiprocessing
import socket
import ssl
import time


def one_setup(ctx, target, proxy, auth):
    host, port = target
    sock = socket.create_connection(proxy or target, timeout=10)
    try:
        if proxy:
            authority = "%s:%d" % (host, port)
            extra = "Proxy-Authorization: %s\r\n" % auth if auth else ""
            sock.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, extra)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("proxy closed during CONNECT")
                head += chunk
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise ConnectionError("CONNECT answered %s" % status.decode())
        tls = ctx.wrap_socket(sock, server_hostname="localhost")  # handshakes here
        tls.close()
    finally:
        sock.close()


def worker(args):
    target, proxy, seconds, auth = args
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ok = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            one_setup(ctx, target, proxy, auth)
            ok += 1
        except (OSError, ConnectionError):
            errors += 1
    return ok, errors


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", type=addr, required=True)
    ap.add_argument("--proxy", type=addr)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--proxy-authorization", help="a Proxy-Authorization value sent with CONNECT")
    a = ap.parse_args()
    with multiprocessing.Pool(a.procs) as pool:
        results = pool.map(worker, [(a.target, a.proxy, a.seconds, a.proxy_authorization)] * a.procs)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    print("TLS setups_per_s=%.1f ok=%d errors=%d" % (ok / a.seconds, ok, errors))


if __name__ == "__main__":
    main()
