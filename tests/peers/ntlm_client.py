#!/usr/bin/env python3
"""Reference NTLM proxy client (pyspnego; its AUTHENTICATE carries a MIC), for tests.

    VENV/bin/python ntlm_client.py --proxy 127.0.0.1:PORT [--user user] [--password PW]
        [--scheme NTLM|Negotiate] [--connect HOST:PORT] URL

Does what WinHTTP does on one keep-alive connection: the request without credentials,
then NEGOTIATE -> 407 + CHALLENGE -> AUTHENTICATE under the scheme given (Negotiate
means raw NTLMSSP tokens inside "Negotiate", as Windows sends without Kerberos). With
--connect the request is "CONNECT HOST:PORT" instead of "GET URL". If the first 407
says "Connection: close", it reconnects. Prints each exchange to stderr and the final
status code on stdout.
"""
import argparse
import base64
import socket
import sys

import spnego


def exchange(sock, request_line, host, auth=None):
    headers = ["Host: " + host, "Proxy-Connection: keep-alive"]
    if auth:
        headers.append("Proxy-Authorization: " + auth)
    sock.sendall(("%s\r\n%s\r\n\r\n" % (request_line, "\r\n".join(headers))).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("proxy closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
    length = int(next((v for k, v in fields if k.lower() == "content-length"), "0"))
    if not request_line.startswith("CONNECT") or status != 200:
        while len(body) < length:
            body += sock.recv(65536)
    print(">>> %s%s\n<<< %s" % (request_line, " [%s...]" % auth[:40] if auth else "", lines[0]), file=sys.stderr)
    return status, fields


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--user", default="user")
    ap.add_argument("--password", default="Secret-Pass-1")
    ap.add_argument("--scheme", default="NTLM", choices=["NTLM", "Negotiate"])
    ap.add_argument("--connect")
    ap.add_argument("url")
    a = ap.parse_args()
    phost, _, pport = a.proxy.rpartition(":")
    if a.connect:
        request_line, host = "CONNECT %s HTTP/1.1" % a.connect, a.connect
    else:
        request_line, host = "GET %s HTTP/1.1" % a.url, a.url.split("/")[2]

    sock = socket.create_connection((phost, int(pport)), timeout=20)
    status, fields = exchange(sock, request_line, host)
    if status == 407:
        if any(k.lower() in ("connection", "proxy-connection") and v.lower() == "close" for k, v in fields):
            print("... proxy closed the connection after the 407; reconnecting", file=sys.stderr)
            sock.close()
            sock = socket.create_connection((phost, int(pport)), timeout=20)
        ctx = spnego.client(a.user, a.password, protocol="ntlm")
        token = ctx.step()
        status, fields = exchange(sock, request_line, host, "%s %s" % (a.scheme, base64.b64encode(token).decode()))
        challenge = next((v.split(None, 1)[1] for k, v in fields
                          if k.lower() == "proxy-authenticate" and v.split()[0] == a.scheme and len(v.split()) > 1), None)
        if status == 407 and challenge:
            token = ctx.step(base64.b64decode(challenge))
            status, _ = exchange(sock, request_line, host, "%s %s" % (a.scheme, base64.b64encode(token).decode()))
    sock.close()
    print(status)


if __name__ == "__main__":
    main()
