"""A replica as its own process: forwards every request to an engine server and relays the answer.

    python replica_proxy.py BACKEND_URL

Standard library only, so it starts in a fraction of a second (an engine_sim
process needs seconds to import torch). It prints ``READY <port>`` once listening
and ``SERVED <path>`` after each relayed answer, so a test can SIGKILL it in the
middle of a run: its open connections drop and new ones are refused, as when a
GPU node dies.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(backend: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self, method: str) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)) if method == "POST" else None
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            request = urllib.request.Request(backend + self.path, data=raw, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                return
            print(f"SERVED {self.path}", flush=True)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._relay("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._relay("POST")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    print(f"READY {httpd.server_address[1]}", flush=True)
    httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main(sys.argv[1])
