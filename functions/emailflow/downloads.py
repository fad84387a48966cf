"""Oversize mail downloads: ``GET /mail/{token}`` on the public downloads API.

A message over SES's 40 MB limit is kept in S3 (the rewritten copy, with no real address of its sender in it) and
its recipient gets a short mail with a link instead (docs/outcomes.md, "Oversize links"). The link cannot be a
presigned S3 URL: a presigned URL is only as good as the credentials that signed it, and a Lambda function's are
its role's temporary session, which ends after hours whatever expiry the URL names. So the link carries a token of
ours (``emailflow.links``, purpose ``download``, valid for ``EMAILFLOW_OVERSIZE_LINK_HOURS``), and each click is
answered here with a fresh presigned URL that only has to live for a few minutes: a redirect (302).

The route is public (a browser cannot sign requests); the token is the credential. Like the approval page:
an edited, guessed or foreign token is refused without any AWS call (404), an expired one says so (410), a fault
is 503 with "try again"; ``Referrer-Policy: no-referrer`` and ``Cache-Control: no-store`` keep the token and the
short-lived URL out of other sites' logs and out of caches. Opening the link twice, or a mail scanner opening it
first, is harmless: a download changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from emailflow.codes import Keyring
from emailflow.config import ConfigurationError
from emailflow.links import PAGE_HEADERS, TokenError, html_page, read_signed_token, signed_token
from emailflow.ports import RelayFault

ROUTE = "GET /mail/{token}"
PURPOSE = "download"
COPY_SUFFIX = ".eml"
REDIRECT_SECONDS = 300
"""Lifetime of the presigned URL a click is redirected to: long enough to start the download, short enough that
a leaked copy of it is worthless, well inside any role session."""
_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


class CopyStore(Protocol):
    """What a download needs of the mail store: where a kept copy is, and a short-lived link to it."""

    def copy_key(self, name: str) -> str: ...

    def download_url(self, key: str, seconds: int) -> str: ...


def download_token(keyring: Keyring, copy_name: str, expires_at: int) -> str:
    """The token for the kept copy ``copy_name`` (``<...>.eml``, as ``MailStore.put_copy`` was given it)."""
    return signed_token(keyring, PURPOSE, copy_name.removesuffix(COPY_SUFFIX), expires_at)


def download_link(base_url: str, token: str) -> str:
    """What the recipient's link mail shows: ``<EMAILFLOW_DOWNLOAD_URL>/<token>``."""
    return f"{base_url.rstrip('/')}/{token}"


@dataclass(frozen=True, slots=True)
class DownloadAnswer:
    status: int
    location: str = ""
    title: str = ""
    text: str = ""

    def as_proxy_result(self) -> dict[str, Any]:
        if self.location:
            return {"statusCode": self.status, "headers": {**PAGE_HEADERS, "location": self.location},
                    "isBase64Encoded": False, "body": ""}
        return html_page(self.status, self.title, (self.text,), content_security_policy=_CONTENT_SECURITY_POLICY)


def handle_download(event: Mapping[str, Any], keyring: Callable[[], Keyring], store: Callable[[], CopyStore],
                    now: int) -> DownloadAnswer:
    """One request of the downloads API. Never raises for anything a browser can send."""
    parameters = event.get("pathParameters") or {}
    token = parameters.get("token") if isinstance(parameters, Mapping) else None
    if event.get("routeKey") != ROUTE or not isinstance(token, str) or not token:
        return DownloadAnswer(404, title="Not found", text="There is nothing here.")
    try:
        name = read_signed_token(keyring(), PURPOSE, token, now, "a download link")
        copies = store()
        return DownloadAnswer(302, location=copies.download_url(copies.copy_key(name + COPY_SUFFIX),
                                                                REDIRECT_SECONDS))
    except TokenError as exc:
        if str(exc).endswith("expired"):
            return DownloadAnswer(410, title="This link has expired",
                                  text="Ask the sender to send the message again.")
        return DownloadAnswer(404, title="Not found", text="This is not a download link of this relay.")
    except (RelayFault, ConfigurationError):  # the code secret or the signing could not be read just now
        return DownloadAnswer(503, title="Please try again",
                              text="The download could not start just now. The link still works: try again in a "
                                   "minute.")

