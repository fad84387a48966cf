"""The new-sender approval page in local mode: what API Gateway and the approval function are on AWS.

A small HTTP server on loopback turns ``GET``/``POST /senders/allow`` into the API Gateway (payload 2.0) events the
approval function receives and answers with the page ``emailflow.approval_pages`` renders, run on local mode's one
worker (never while a relay invocation runs, as everything else here). The approval mails of local mode link to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

PATH = "/senders/allow"
_MAX_BODY = 8192

Run = Callable[[dict[str, Any]], dict[str, Any]]
"""Answers one payload-2.0 event with a proxy result (on local mode's worker)."""


def _handler_class(run: Run) -> type[BaseHTTPRequestHandler]:
    class ApprovalRequest(BaseHTTPRequestHandler):
        server_version = "emailflow-local"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            event: dict[str, Any] = {"version": "2.0", "routeKey": f"{method} {url.path}", "rawPath": url.path,
                                     "queryStringParameters": dict(parse_qsl(url.query)) or None,
                                     "body": body, "isBase64Encoded": False}
            result: dict[str, Any] = run(event) if url.path == PATH else {"statusCode": 404, "body": "not found"}
            payload = str(result.get("body", "")).encode("utf-8")
            self.send_response(int(result["statusCode"]))
            headers: dict[str, Any] = result.get("headers") or {}
            for name, value in headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the page's token is in the request line, and local mode logs on its own terms."""

    return ApprovalRequest


class ApprovalServer:
    """Serves the approval page on ``host``; ``url`` is what approval mails link to."""

    def __init__(self, host: str, run: Run) -> None:
        self._server = ThreadingHTTPServer((host, 0), _handler_class(run))
        self._thread = threading.Thread(target=self._server.serve_forever, name="emailflow-approvals", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}" if isinstance(host, str) else f"http://127.0.0.1:{port}{PATH}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
