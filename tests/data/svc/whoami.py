#!/usr/bin/env python3
"""A tiny HTTP server for the service-step tests (stdlib only).

Usage: whoami.py PORT [--ignore-term] [--slow-restart FLAGFILE]

  GET /who          200, JSON {"name": $WHOAMI, "pid": pid, "port": PORT,
                    "index": $INSTANCE_INDEX or null}; the request line is
                    printed to stdout (the service's log), so a test can
                    see a marked request (/who?mark=x)
  GET /status/NNN   status NNN
  anything else     404

--ignore-term       SIGTERM is ignored (printed: "ignoring SIGTERM"), so
                    stopping it needs its stop_timeout and SIGKILL
--slow-restart F    if F exists at start, wait 60 s before listening
                    (prints "slow start"); F is created at every start:
                    the first start is quick, later ones are slow
"""
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        print("request " + self.path, flush=True)
        if self.path.startswith("/who"):
            idx = os.environ.get("INSTANCE_INDEX")
            doc = {"name": os.environ.get("WHOAMI", ""), "pid": os.getpid(),
                   "port": PORT, "index": int(idx) if idx else None}
            self._send(200, json.dumps(doc), "application/json")
        elif self.path.startswith("/status/"):
            self._send(int(self.path[len("/status/"):]), "status")
        else:
            self._send(404, "no such endpoint")


def main():
    if "--ignore-term" in sys.argv:
        def ignore(signo, frame):
            print("ignoring SIGTERM", flush=True)
        signal.signal(signal.SIGTERM, ignore)
    if "--slow-restart" in sys.argv:
        flag = sys.argv[sys.argv.index("--slow-restart") + 1]
        again = os.path.exists(flag)
        with open(flag, "w") as f:
            f.write(str(os.getpid()))
        if again:
            print("slow start", flush=True)
            time.sleep(60)
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    srv.daemon_threads = True
    print("listening on %d" % PORT, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
