#!/usr/bin/env python3
"""A small HTTP/1.1 server for eventrig's tests (stdlib only).

Usage: testhttpd.py PORT [CERT KEY [CLIENT_CA]]
  with CERT and KEY (PEM files) it serves HTTPS; with CLIENT_CA it asks
  for a client certificate (optional) and /echo names its subject's CN.

Endpoints (any method unless said otherwise):
  /json          200, a JSON object; headers X-Custom: Value, two X-Multi
  /status/NNN    status NNN, body "status NNN"
  /echo          200, JSON: method, path, query, headers (lower-cased names),
                 body (text), json (parsed body or null), client_port,
                 body_len and body_sha256 (of the bytes received),
                 client_cn (HTTPS with a client certificate, else null)
  /redirect?n=N&to=PATH
                 302 to /redirect?n=N-1&to=PATH, and at n=1 to PATH: N
                 redirects
  /setcookies    200, two Set-Cookie headers: sid (Path=/; Secure; HttpOnly;
                 SameSite=Lax, an Expires date with a comma) and theme=dark
  /cookie?name=N&value=V
                 200, sets cookie N=V (Path=/)
  /slow?ms=N     sleeps N ms, then 200 "slow"
  /counter       200, {"count": n}, n counting calls since start (or since
                 /counter?reset=1, which answers {"count": 0});
                 /counter?peek=1 answers the count without counting
  /text          200, text/plain "hello world"
  /big?kb=N      200, N KiB of 'x'
  /binary        200, application/octet-stream, bytes 0..255
Everything else: 404 "no such endpoint".
Connections are kept alive (Content-Length always set).
"""
import hashlib
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_counter = 0
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "testhttpd"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body, ctype="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        if status in (204, 304) or status < 200:
            # no body allowed: send none, or the connection desyncs
            self.send_response(status)
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _client_cn(self):
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            return None
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        global _counter
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        body = self._body()
        p = url.path
        if p == "/json":
            doc = {"ok": True, "n": 3, "name": "eventrig",
                   "items": [{"id": 1, "tag": "a"}, {"id": 2, "tag": "b"}],
                   "nested": {"a": {"b": "deep"}}, "none": None}
            self._send(200, json.dumps(doc), "application/json",
                       [("X-Custom", "Value"), ("X-Multi", "one"),
                        ("X-Multi", "two")])
        elif p.startswith("/status/"):
            code = int(p[len("/status/"):])
            self._send(code, "status %d" % code)
        elif p == "/echo":
            text = body.decode("utf-8", "replace")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            doc = {"method": self.command, "path": p, "query": url.query,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": text, "json": parsed,
                   "client_port": self.client_address[1],
                   "body_len": len(body),
                   "body_sha256": hashlib.sha256(body).hexdigest(),
                   "client_cn": self._client_cn()}
            self._send(200, json.dumps(doc), "application/json")
        elif p == "/redirect":
            n = int(q.get("n", ["1"])[0])
            to = q.get("to", ["/json"])[0]
            loc = to if n <= 1 else "/redirect?n=%d&to=%s" % (n - 1, to)
            self._send(302, "see " + loc, extra=[("Location", loc)])
        elif p == "/setcookies":
            self._send(200, "cookies", extra=[
                ("Set-Cookie", "sid=abc123; Path=/; Secure; HttpOnly; "
                 "SameSite=Lax; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
                ("Set-Cookie", "theme=dark; Path=/app")])
        elif p == "/cookie":
            self._send(200, "set", extra=[
                ("Set-Cookie", "%s=%s; Path=/" % (q["name"][0],
                                                  q["value"][0]))])
        elif p == "/slow":
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000.0)
            self._send(200, "slow")
        elif p == "/counter":
            with _lock:
                if q.get("reset"):
                    _counter = 0
                elif q.get("peek"):
                    pass
                else:
                    _counter += 1
                n = _counter
            self._send(200, json.dumps({"count": n}), "application/json")
        elif p == "/text":
            self._send(200, "hello world")
        elif p == "/big":
            self._send(200, b"x" * (1024 * int(q.get("kb", ["1"])[0])))
        elif p == "/binary":
            self._send(200, bytes(range(256)), "application/octet-stream")
        else:
            self._send(404, "no such endpoint")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
    do_OPTIONS = _handle


def main():
    port = int(sys.argv[1])
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    if len(sys.argv) >= 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        if len(sys.argv) >= 5:
            ctx.load_verify_locations(sys.argv[4])
            ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
