#!/usr/bin/env python3
"""A tiny Prometheus-style metrics server for eventrig's tests (stdlib only).

Usage: metricsd.py PORT INSTANCE

Endpoints (GET):
  /metrics[?delay_ms=D]
             after waiting D ms (default 0), the text exposition format
             (0.0.4): every counter bumped so
             far, each with the label instance="INSTANCE" plus its own
             labels, and a few fixed samples that exercise the format:
               metricsd_up 1
               metricsd_info{instance="..",via="$METRICSD_VIA"} 1
               metricsd_odd{path="a\\"b,c}"} 7 1700000000000
               metricsd_nan NaN
               metricsd_latency_seconds_bucket{le="0.1"} 3 (and le="+Inf")
  /bump?name=N&by=K&delay_ms=D&LABEL=VALUE...
             adds K (default 1, may be fractional) to counter N with the
             given extra labels, after waiting D ms (default 0); answers
             the new value as text
  /broken    200, a body whose third line is malformed (no value)
Everything else: 404.
"""
import socket
import sys
import time
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
import os
import re

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

_lock = threading.Lock()
_counters = {}  # (name, ((label, value), ...)) -> float
_instance = "?"


def esc(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def fmt(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def render():
    out = [
        "# HELP metricsd_up Whether the server is up.",
        "# TYPE metricsd_up gauge",
        "metricsd_up 1",
        'metricsd_info{instance="%s",via="%s"} 1'
        % (esc(_instance), esc(os.environ.get("METRICSD_VIA", ""))),
        "# a comment line",
        'metricsd_odd{path="a\\"b,c}",instance="%s"} 7 1700000000000'
        % esc(_instance),
        "metricsd_nan NaN",
        "# TYPE metricsd_latency_seconds histogram",
        'metricsd_latency_seconds_bucket{le="0.1"} 3',
        'metricsd_latency_seconds_bucket{le="+Inf"} 5',
        "metricsd_latency_seconds_sum 1.25e-1",
        "metricsd_latency_seconds_count 5",
    ]
    with _lock:
        items = sorted(_counters.items())
    typed = set()
    for (name, labels), v in items:
        if name not in typed:
            out.append("# TYPE %s counter" % name)
            typed.add(name)
        ls = [("instance", _instance)] + list(labels)
        out.append(
            "%s{%s} %s"
            % (name, ",".join('%s="%s"' % (k, esc(x)) for k, x in ls), fmt(v))
        )
    return "\n".join(out) + "\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "metricsd"

    def log_message(self, fmt_, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle and
        # delayed ACKs hold the body back ~40 ms on a kept-alive connection
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status, body, ctype="text/plain; version=0.0.4"):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == "/metrics":
            q = dict(parse_qsl(u.query))
            if q.get("delay_ms", "").isdigit():  # a slow scrape
                time.sleep(min(int(q["delay_ms"]), 60000) / 1000.0)
            self._send(200, render())
            return
        if u.path == "/broken":
            self._send(200, "# TYPE up gauge\nup 1\nhalf_a_sample{a=\"b\"}\n")
            return
        if u.path == "/bump":
            q = dict(parse_qsl(u.query, keep_blank_values=True))
            name = q.pop("name", "")
            try:
                by = float(q.pop("by", "1"))
                delay_ms = int(q.pop("delay_ms", "0"))
            except ValueError:
                self._send(400, "by and delay_ms must be numbers\n", "text/plain")
                return
            if not NAME_RE.match(name) or any(
                not LABEL_RE.match(k) or k == "instance" for k in q
            ):
                self._send(400, "bad name or label\n", "text/plain")
                return
            key = (name, tuple(sorted(q.items())))
            if delay_ms > 0:
                time.sleep(min(delay_ms, 60000) / 1000.0)
            with _lock:
                _counters[key] = _counters.get(key, 0.0) + by
                v = _counters[key]
            self._send(200, fmt(v) + "\n", "text/plain")
            return
        self._send(404, "no such endpoint\n", "text/plain")


def main():
    global _instance
    port = int(sys.argv[1])
    _instance = sys.argv[2] if len(sys.argv) > 2 else "m"
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
