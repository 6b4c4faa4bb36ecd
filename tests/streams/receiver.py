"""A destination for stream tests, run as its own process: an HTTP server that fails a share
of requests at random and answers slowly, and records every request it acknowledged.

    python receiver.py PORT OUT_FILE [--fail-rate 0.3] [--max-delay 0.05] [--secret-file F]

With `--secret-file`, webhook requests are verified with the `standardwebhooks` package (a
third party's verifier): a request it rejects is answered 401 and recorded as such. Each
request acknowledged (2xx) is one JSON line in OUT_FILE: its path, headers and body, written
(and flushed) before the answer is sent, so the test sees every acknowledged batch.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--max-delay", type=float, default=0.0)
    parser.add_argument("--secret-file", default=None)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    lock = threading.Lock()
    rng = random.Random()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(rng.uniform(0, args.max_delay))
            if rng.random() < args.fail_rate:
                self._answer(503)
                return
            record: dict[str, Any] = {
                "at": time.time(),
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8"),
            }
            if args.secret_file:
                secret = Path(args.secret_file).read_text().strip()
                try:
                    Webhook(secret).verify(body, record["headers"])
                except WebhookVerificationError as exc:
                    record = {"rejected": str(exc)}
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            self._answer(401 if "rejected" in record else args.status)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
