#!/usr/bin/env python3
"""Small HTTP/1.1 origin for tests (plain or TLS), standard library only.

Every answer is text/plain: "origin=<http|https> method=M path=P", one line per
request header received ("> Name: value"), then the request body, so a test can see
what a proxy chain forwarded (for instance that no Proxy-Authorization reached the
origin). /status/N answers status N; /bytes/N answers N bytes of "x"; /slow/MS waits
MS milliseconds before answering.
"""
import argparse
import http.server
import ssl
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WaypostTestOrigin/1.0"
    scheme = "http"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].split("/")
        status, body = 200, None
        try:
            if len(parts) > 2 and parts[1] == "status":
                status = int(parts[2])
            elif len(parts) > 2 and parts[1] == "bytes":
                body = b"x" * int(parts[2])
            elif len(parts) > 2 and parts[1] == "slow":
                time.sleep(int(parts[2]) / 1000)
        except ValueError:
            status = 400
        if body is None:
            lines = ["origin=%s method=%s path=%s" % (self.scheme, self.command, self.path)]
            lines += ["> %s: %s" % (k, v) for k, v in self.headers.items()]
            body = ("\n".join(lines) + "\n").encode() + request_body
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if status not in (204, 304) and not 100 <= status < 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = answer


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    handler = type("H", (Handler,), {"scheme": "https" if args.cert else "http"})
    server = http.server.ThreadingHTTPServer((args.bind, args.port), handler)
    server.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        # handshake in the handler thread, so a stalled client cannot block accept()
        server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
