"""The public pages in local mode: what API Gateway and the approval and downloads functions are on AWS.

A small HTTP server on loopback turns ``GET``/``POST /senders/allow`` (the new-sender approval page) and
``GET /mail/<token>`` (oversize mail downloads) into the API Gateway (payload 2.0) events those functions receive,
and answers with what ``emailflow.approval_pages`` and ``emailflow.downloads`` return, run on local mode's one
worker (never while a relay invocation runs, as everything else here). Local mode's mails link to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

APPROVAL_PATH = "/senders/allow"
DOWNLOAD_PATH = "/mail"
_MAX_BODY = 8192

Run = Callable[[dict[str, Any]], dict[str, Any]]
"""Answers one payload-2.0 event with a proxy result (on local mode's worker)."""


def _event(method: str, path: str, query: str, body: str) -> dict[str, Any] | None:
    """The event API Gateway would build for this request, or None for a path no route matches."""
    event: dict[str, Any] = {"version": "2.0", "rawPath": path, "queryStringParameters": dict(parse_qsl(query)) or None,
                             "body": body, "isBase64Encoded": False}
    if path == APPROVAL_PATH:
        return {**event, "routeKey": f"{method} {path}"}
    token = path.removeprefix(DOWNLOAD_PATH + "/")
    if path.startswith(DOWNLOAD_PATH + "/") and token and "/" not in token:
        return {**event, "routeKey": f"{method} {DOWNLOAD_PATH}/{{token}}", "pathParameters": {"token": unquote(token)}}
    return None


def _handler_class(approval: Run, download: Run) -> type[BaseHTTPRequestHandler]:
    class PageRequest(BaseHTTPRequestHandler):
        server_version = "emailflow-local"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            event = _event(method, url.path, url.query, body)
            result: dict[str, Any] = {"statusCode": 404, "body": "not found"} if event is None else \
                (approval if url.path == APPROVAL_PATH else download)(event)
            payload = str(result.get("body", "")).encode("utf-8")
            self.send_response(int(result["statusCode"]))
            headers: dict[str, Any] = result.get("headers") or {}
            for name, value in headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the pages' tokens are in the request line, and local mode logs on its own terms."""

    return PageRequest


class PageServer:
    """Serves the approval page and the downloads on ``host``; ``approval_url`` and ``download_url`` are what
    local mode's mails link to."""

    def __init__(self, host: str, approval: Run, download: Run) -> None:
        self._server = ThreadingHTTPServer((host, 0), _handler_class(approval, download))
        self._thread = threading.Thread(target=self._server.serve_forever, name="emailflow-pages", daemon=True)

    @property
    def _base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://127.0.0.1:{port}"

    @property
    def approval_url(self) -> str:
        return self._base + APPROVAL_PATH

    @property
    def download_url(self) -> str:
        return self._base + DOWNLOAD_PATH

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
