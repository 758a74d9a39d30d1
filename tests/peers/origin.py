#!/usr/bin/env python3
"""Small HTTP/1.1 origin for tests (plain or TLS), standard library only.

Every answer is text/plain: "origin=<http|https> method=M path=P", one line per
request header received ("> Name: value"), then the request body, so a test can see
what a proxy chain forwarded (for instance that no Proxy-Authorization reached the
origin). /status/N answers status N; /bytes/N answers N bytes of "x"; /slow/MS waits
MS milliseconds before answering.

Streaming and upgrade endpoints (for the request-path tests):
  POST /sha256      reads the whole body (Content-Length or chunked) and answers
                    "bytes=N sha256=HEX" instead of echoing it
  GET /sse?events=N&gap=SECONDS[&framing=close]
                    text/event-stream: "data: i\\n\\n" for i in 0..N, the first at once,
                    then one every SECONDS (each written and flushed on its own); the
                    response is chunked, or close-delimited with framing=close
  GET /ws           WebSocket (RFC 6455) echo: 101 with Sec-WebSocket-Accept, then every
                    text/binary/continuation frame comes back unmasked as it was sent
                    (opcode and FIN kept), ping gets pong, close is answered and ends it
"""
import argparse
import base64
import hashlib
import http.server
import ssl
import struct
import time
import urllib.parse

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WaypostTestOrigin/1.0"
    scheme = "http"

    # ---- request bodies -------------------------------------------------------------

    def body_chunks(self):
        """Yields the request body in pieces: Content-Length or chunked (trailers skipped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ConnectionError("body ended inside a chunk size line")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 16))
                    if not piece:
                        raise ConnectionError("body ended inside a chunk")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(3)  # CRLF after the chunk data
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                piece = self.rfile.read(min(left, 1 << 16))
                if not piece:
                    raise ConnectionError("body shorter than its Content-Length")
                left -= len(piece)
                yield piece

    # ---- dispatch ---------------------------------------------------------------------

    def answer(self):
        path = self.path.split("?")[0]
        if path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if path == "/sse":
            return self.sse()
        if path == "/sha256":
            return self.sha256()
        request_body = b"".join(self.body_chunks())
        parts = path.split("/")
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

    def plain(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # ---- POST /sha256 -----------------------------------------------------------------

    def sha256(self):
        digest, count = hashlib.sha256(), 0
        for piece in self.body_chunks():
            digest.update(piece)
            count += len(piece)
        self.plain(200, "bytes=%d sha256=%s\n" % (count, digest.hexdigest()))

    # ---- GET /sse ---------------------------------------------------------------------

    def sse(self):
        for _ in self.body_chunks():
            pass
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            events = int(query.get("events", ["3"])[0])
            gap = float(query.get("gap", ["1"])[0])
        except ValueError:
            return self.plain(400, "events=N&gap=SECONDS\n")
        chunked = query.get("framing", ["chunked"])[0] != "close"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        for i in range(events):
            if i:
                time.sleep(gap)
            event = b"data: %d\n\n" % i
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    # ---- GET /ws ----------------------------------------------------------------------

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            key_ok = False
        if self.headers.get("Sec-WebSocket-Version") != "13" or not key_ok:
            self.close_connection = True
            return self.plain(400, "a WebSocket handshake needs Sec-WebSocket-Key and version 13\n")
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # after the frames the connection is done with HTTP
        try:
            while True:
                fin_op, payload = self.read_frame()
                op = fin_op & 0x0F
                if op == 0x9:  # ping -> pong
                    self.write_frame(0x80 | 0xA, payload)
                elif op == 0x8:  # close: answer and end
                    self.write_frame(0x80 | 0x8, payload[:2])
                    return
                elif op in (0x0, 0x1, 0x2):
                    self.write_frame(fin_op, payload)
        except (EOFError, ConnectionError, OSError):
            return

    def read_exact(self, n):
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    def read_frame(self):
        b0, b1 = self.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exact(8))[0]
        mask = self.read_exact(4) if b1 & 0x80 else None
        payload = self.read_exact(n)
        if mask:
            payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
        return b0 & 0x8F, payload

    def write_frame(self, fin_op, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", fin_op, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", fin_op, 126, n)
        else:
            head = struct.pack("!BBQ", fin_op, 127, n)
        self.wfile.write(head + payload)
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
