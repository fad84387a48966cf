"""The HTTP side of local mode: what API Gateway and the approval, downloads and marketplace API functions are on AWS.

A small HTTP server on loopback turns ``GET``/``POST /senders/allow`` (the new-sender approval page),
``GET /mail/<token>`` (oversize mail downloads) and the marketplace API's routes (``POST /services``, ...:
``emailflow.api.ROUTES``) into the API Gateway (payload 2.0) events those functions receive, and answers with what
``emailflow.approval_pages``, ``emailflow.downloads`` and ``emailflow.api`` return, run on local mode's one worker
(never while a relay invocation runs, as everything else here). Local mode's mails link to it.

On AWS every API route needs a SigV4 signature, checked by API Gateway, which then names the caller in the event.
Here nothing signs: an API request on this loopback port is taken as the emulated account's own (the emulator
itself accepts any credentials too). It is a sandbox for a developer's machine, never a deployment.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emailflow.api import ROUTES as API_ROUTES

APPROVAL_PATH = "/senders/allow"
DOWNLOAD_PATH = "/mail"
_MAX_BODY = 65_536
"""Above the API's own limit on a request body, so that its 413 is what a too large request gets."""
LOCAL_CALLER = "arn:aws:iam::{account}:user/local-developer"
"""Who an API request is from in local mode (on AWS: the SigV4 signer, as API Gateway's IAM authorizer names it)."""


def _api_pattern(route: str) -> tuple[str, re.Pattern[str]]:
    method, _, path = route.partition(" ")
    return method, re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


_API = {route: _api_pattern(route) for route in API_ROUTES}

Run = Callable[[dict[str, Any]], dict[str, Any]]
"""Answers one payload-2.0 event with a proxy result (on local mode's worker)."""


def _event(method: str, path: str, query: str, body: str, headers: dict[str, str],
           account: str) -> tuple[str, dict[str, Any]] | None:
    """Which page (``approval``, ``download``, ``api``) and the event API Gateway would build for this request, or
    None for a path no route matches."""
    event: dict[str, Any] = {"version": "2.0", "rawPath": path, "queryStringParameters": dict(parse_qsl(query)) or None,
                             "body": body, "isBase64Encoded": False, "headers": headers}
    if path == APPROVAL_PATH:
        return "approval", {**event, "routeKey": f"{method} {path}"}
    token = path.removeprefix(DOWNLOAD_PATH + "/")
    if path.startswith(DOWNLOAD_PATH + "/") and token and "/" not in token:
        return "download", {**event, "routeKey": f"{method} {DOWNLOAD_PATH}/{{token}}",
                            "pathParameters": {"token": unquote(token)}}
    for route, (route_method, pattern) in _API.items():
        if method == route_method and (match := pattern.match(path)):
            identity = {"accountId": account, "userArn": LOCAL_CALLER.format(account=account)}
            return "api", {**event, "routeKey": route,
                           "pathParameters": {name: unquote(value) for name, value in match.groupdict().items()},
                           "requestContext": {"authorizer": {"iam": identity}}}
    return None


def _handler_class(pages: dict[str, Run], account: str) -> type[BaseHTTPRequestHandler]:
    class PageRequest(BaseHTTPRequestHandler):
        server_version = "emailflow-local"

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_PATCH(self) -> None:
            self._answer("PATCH")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = min(int(self.headers.get("Content-Length") or 0), _MAX_BODY)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            request_headers = {name.lower(): value for name, value in self.headers.items()}
            found = _event(method, url.path, url.query, body, request_headers, account)
            result: dict[str, Any] = {"statusCode": 404, "body": "not found"} if found is None else \
                pages[found[0]](found[1])
            payload = str(result.get("body", "")).encode("utf-8")
            self.send_response(int(result["statusCode"]))
            answer_headers: dict[str, Any] = result.get("headers") or {}
            for name, value in answer_headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the pages' tokens are in the request line, and local mode logs on its own terms."""

    return PageRequest


class PageServer:
    """Serves the approval page, the downloads and the marketplace API on ``host``; ``approval_url`` and
    ``download_url`` are what local mode's mails link to, ``api_url`` the API's base."""

    def __init__(self, host: str, *, approval: Run, download: Run, api: Run, account: str) -> None:
        self._server = ThreadingHTTPServer((host, 0), _handler_class(
            {"approval": approval, "download": download, "api": api}, account))
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

    @property
    def api_url(self) -> str:
        return self._base

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
