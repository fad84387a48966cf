"""The new-sender approval page: ``GET /senders/allow?token=...`` and its form's ``POST /senders/allow``.

A service owner opens the link from the approval mail in a browser, which cannot sign requests, so these two routes
have no IAM authorizer: the token is the credential (HMAC-signed with the code secret, expiring, one-time; refused
without a store read when edited or expired: ``emailflow.senders``). The rest follows from the link being public:

- **GET changes nothing.** Mail security scanners and link previews open links; the page only names the address
  and the service, with a button. The button POSTs the token in the form body (not in the URL).
- **No leaks.** The pages show the new address and the service's name, which the service already knows, nothing
  about the user; ``Referrer-Policy: no-referrer`` keeps the token out of other sites' logs, ``Cache-Control:
  no-store`` out of caches; ``frame-ancestors 'none'`` stops another site framing the button (clickjacking).
- **Errors are pages, never a 5xx for bad input**: an unusable link is 410 (Gone) with the reason; a fault is 503
  with "try again" (the link still works: ``emailflow.approvals`` marks it used only at the very end).
"""

from __future__ import annotations

import base64
import binascii
import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from emailflow.approvals import Approval, ApprovalError, PendingApproval
from emailflow.links import html_page
from emailflow.ports import RelayFault

ROUTES = ("GET /senders/allow", "POST /senders/allow")
_MAX_FORM_BYTES = 4096
_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


class Approvals(Protocol):
    """What the page needs: the Python client's two approval calls."""

    def pending_approval(self, token: str) -> PendingApproval: ...

    def allow_sender(self, token: str) -> Approval: ...


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    title: str
    paragraphs: tuple[str, ...]
    form_token: str | None = None
    """When set, the page carries the confirmation button that POSTs this token."""

    def as_proxy_result(self) -> dict[str, Any]:
        form = "" if self.form_token is None else (
            '<form method="post" action="allow"><input type="hidden" name="token" value="'
            f'{html.escape(self.form_token, quote=True)}"><button type="submit">Allow</button></form>')
        return html_page(self.status, self.title, self.paragraphs, content_security_policy=_CONTENT_SECURITY_POLICY,
                         form=form)


def _gone(reason: str) -> Page:
    return Page(410, "This link cannot be used", (f"{reason[:1].upper()}{reason[1:]}.",
                                                   "Nothing was changed. If the reply is still to be delivered, ask "
                                                   "the sender to write again: a new link will be mailed to you."))


def _unavailable() -> Page:
    return Page(503, "Please try again", ("The relay could not finish just now. The link still works: try again "
                                          "in a minute.",))


def _form_token(event: Mapping[str, Any]) -> str | None:
    raw = event.get("body") or ""
    if not isinstance(raw, str) or len(raw) > 2 * _MAX_FORM_BYTES:
        return None
    try:
        body = base64.b64decode(raw, validate=True).decode("utf-8") if event.get("isBase64Encoded") else raw
    except (binascii.Error, UnicodeDecodeError):
        return None
    values = parse_qs(body, max_num_fields=5).get("token", [])
    return values[0] if len(values) == 1 else None


def _answer(work: Callable[[], Page]) -> Page:
    """``work``'s page; an unusable link is 410 with its reason, a fault 503 (the link still works)."""
    try:
        return work()
    except ApprovalError as exc:
        return _gone(str(exc))
    except RelayFault:
        return _unavailable()


def _confirmation(pending: PendingApproval, token: str) -> Page:
    return Page(200, f"Allow {pending.sender}?", (
        f"{pending.sender} answered one of your conversations as {pending.service_name}, from an address that is "
        "not registered for you.",
        "If this address is yours (a second mailbox, a colleague's), allow it: the held reply is delivered and the "
        "address may answer your conversations from now on. If you do not recognise it, close this page.",
    ), form_token=token)


def _allowed(approval: Approval) -> Page:
    delivered = approval.outcome is None or approval.outcome.action.value == "forwarded"
    paragraphs = [
        f"{approval.sender} may now answer your conversations.",
        "The held reply was delivered." if delivered else
        f"The held reply was not delivered ({approval.outcome.reason.value if approval.outcome else ''}).",
    ]
    if kept := len(approval.later_outcomes):
        sent = sum(outcome.action.value == "forwarded" for outcome in approval.later_outcomes)
        what = "The later reply from this address, kept until now," if kept == 1 else \
            f"The {kept} later replies from this address, kept until now,"
        paragraphs.append(f"{what} {'was' if kept == 1 else 'were'} delivered too." if sent == kept else
                          f"{what} {'was' if kept == 1 else 'were'} delivered: {sent} of {kept}.")
    return Page(200, "Allowed", tuple(paragraphs))


def handle_approval(event: Mapping[str, Any], approvals: Callable[[], Approvals]) -> Page:
    """One request of the approval page. Never raises for anything a browser can send."""
    route = event.get("routeKey")
    if route == "GET /senders/allow":
        query = event.get("queryStringParameters") or {}
        token = query.get("token") if isinstance(query, Mapping) else None
        if not isinstance(token, str) or not token:
            return _gone("the link is incomplete")
        return _answer(lambda: _confirmation(approvals().pending_approval(token), token))
    if route == "POST /senders/allow":
        form_token = _form_token(event)
        if not form_token:
            return _gone("the form was incomplete")
        return _answer(lambda: _allowed(approvals().allow_sender(form_token)))
    return Page(404, "Not found", ("There is nothing here.",))
