#!/usr/bin/env python3
"""echo.py PORT: answers every request with a JSON body holding the
request's method, path, headers and body (so secrets sent to it come back
in the response), and a Set-Cookie header. For tests/integration/redact.sh."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Echo(BaseHTTPRequestHandler):
    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        out = json.dumps({"method": self.command, "path": self.path,
                          "headers": dict(self.headers.items()),
                          "body": body, "ok": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        cookie = self.headers.get("Cookie")
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *a):
        pass


# a service that talks about its secrets in its own log (eventrig leaves
# that file alone; it must not copy the secret anywhere else)
sys.stderr.write("echo: SVC_SECRET=%s SVC_API_TOKEN=%s args=%s\n" % (
    os.environ.get("SVC_SECRET"), os.environ.get("SVC_API_TOKEN"),
    " ".join(sys.argv[2:])))
sys.stderr.flush()
HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
