"""Oversize mail downloads: the link mail's signed link, and the page that turns a click into a short-lived
presigned URL (emailflow.downloads), on in-memory fakes."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from emailflow.codes import Keyring
from emailflow.downloads import REDIRECT_SECONDS, ROUTE, DownloadAnswer, handle_download
from emailflow.links import TokenError, read_signed_token
from emailflow.outcomes import Action, Reason
from emailflow.ports import RelayFault
from emailflow.senders import approval_token
from tests.support.fakes import DAY, KEYRING, START, DictMailStore
from tests.unit.test_relay import OWNER, Relay

DOWNLOAD_PAGE = "https://files.relay.example/mail"
_LINK = re.compile(re.escape(DOWNLOAD_PAGE).encode() + rb"/(?P<token>[A-Za-z0-9_.-]+)")


def _event(token: str | None, route: str = ROUTE) -> dict[str, Any]:
    return {"version": "2.0", "routeKey": route, "pathParameters": None if token is None else {"token": token}}


def _click(token: str | None, store: DictMailStore, now: int, keyring: Keyring = KEYRING,
           route: str = ROUTE) -> DownloadAnswer:
    return handle_download(_event(token, route), lambda: keyring, lambda: store, now)


@pytest.fixture
def relay() -> Relay:
    harness = Relay()
    # Any message over 500 bytes is "too large for SES" here: the oversize path on an ordinary fixture.
    harness.context = replace(harness.context, max_outbound_bytes=500, oversize_link_seconds=DAY,
                              download_page_url=DOWNLOAD_PAGE)
    return harness


def _oversize_link_token(relay: Relay) -> tuple[str, bytes]:
    """A first message too large for SES: the token of the link the service got, and the copy that was kept."""
    service = relay.register((OWNER,))
    outcome, = relay.user_writes(service)
    assert (outcome.action, outcome.reason) == (Action.FORWARDED, Reason.OVERSIZE)
    link_mail = next(mail for mail in relay.mailer.sent if mail.to_address == OWNER)
    match = _LINK.search(link_mail.raw)
    assert match is not None, link_mail.raw
    copies = [raw for key, raw in relay.mail_store.objects.items() if key.startswith("copies/")]
    assert len(copies) == 1
    return match["token"].decode(), copies[0]


def test_oversize_link_names_the_downloads_page_never_a_presigned_url(relay: Relay) -> None:
    # When a message too large for SES is relayed
    token, copy = _oversize_link_token(relay)

    # Then the link is the downloads page with a token for the kept copy, valid for the configured lifetime
    name = read_signed_token(KEYRING, "download", token, START, "a download link")
    assert relay.mail_store.objects[f"copies/{name}.eml"] == copy
    with pytest.raises(TokenError, match="expired"):
        read_signed_token(KEYRING, "download", token, START + DAY, "a download link")
    assert b"expires=" not in b"".join(mail.raw for mail in relay.mailer.sent)


def test_a_click_is_redirected_to_a_short_lived_presigned_url_of_the_copy(relay: Relay) -> None:
    # Given the link of an oversize message
    token, _ = _oversize_link_token(relay)
    name = read_signed_token(KEYRING, "download", token, START, "a download link")

    # When it is opened an hour before it expires (long after the relay's own credentials may have)
    answer = _click(token, relay.mail_store, START + DAY - 3600).as_proxy_result()

    # Then it redirects to a URL presigned now, for minutes, of exactly that copy; nothing is cached or referred
    assert answer["statusCode"] == 302
    assert answer["headers"]["location"] == f"https://inbound.example/copies/{name}.eml?expires={REDIRECT_SECONDS}"
    assert answer["headers"]["cache-control"] == "no-store"
    assert answer["headers"]["referrer-policy"] == "no-referrer"


def test_a_link_signed_before_a_key_rotation_still_downloads(relay: Relay) -> None:
    token, _ = _oversize_link_token(relay)
    rotated = Keyring(current=b"the-new-code-secret-0123456789ab", previous=(KEYRING.current,))
    assert _click(token, relay.mail_store, START, keyring=rotated).status == 302


def test_an_expired_link_says_so(relay: Relay) -> None:
    token, _ = _oversize_link_token(relay)
    answer = _click(token, relay.mail_store, START + DAY)
    assert (answer.status, answer.title) == (410, "This link has expired")
    assert "location" not in answer.as_proxy_result()["headers"]


@pytest.mark.parametrize("edit", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature
    lambda token: "x" + token,  # the copy it names
    lambda token: token.replace(".", ".9", 1),  # the expiry
    lambda token: "",
    lambda token: "../../etc/passwd",
    lambda token: token + "/" + token,
])
def test_an_edited_or_foreign_link_is_not_found_without_touching_the_store(relay: Relay, edit: Any) -> None:
    # Given a genuine link, edited
    token, _ = _oversize_link_token(relay)

    class NoStore(DictMailStore):
        def download_url(self, key: str, seconds: int) -> str:
            raise AssertionError("a refused link must not be signed")

    # When it is opened, Then it is 404 and nothing was presigned
    answer = _click(edit(token), NoStore(), START)
    assert answer.status == 404


def test_an_approval_token_is_worthless_as_a_download_link(relay: Relay) -> None:
    # Given an approval token whose subject is the name of a kept copy
    token, _ = _oversize_link_token(relay)
    name = read_signed_token(KEYRING, "download", token, START, "a download link")
    forged = approval_token(KEYRING, name, START + DAY)

    # Then the downloads page does not accept it (the HMAC covers the purpose)
    assert _click(forged, relay.mail_store, START).status == 404


def test_other_routes_and_a_missing_token_are_not_found(relay: Relay) -> None:
    token, _ = _oversize_link_token(relay)
    assert _click(token, relay.mail_store, START, route="POST /mail/{token}").status == 404
    assert _click(None, relay.mail_store, START).status == 404


def test_a_fault_while_signing_is_try_again_and_the_link_keeps_working(relay: Relay) -> None:
    token, _ = _oversize_link_token(relay)

    class FailingStore(DictMailStore):
        def download_url(self, key: str, seconds: int) -> str:
            raise RelayFault("could not sign the download link")

    answer = _click(token, FailingStore(), START)
    assert answer.status == 503
    assert _click(token, relay.mail_store, START).status == 302


def test_without_a_downloads_page_the_link_is_presigned_for_the_whole_lifetime(relay: Relay) -> None:
    # Given a relay with no downloads page configured (not the template's: a bare deployment)
    relay.context = replace(relay.context, download_page_url="")
    service = relay.register((OWNER,))

    # When an oversize message is relayed, Then the link is the store's presigned URL for the whole lifetime
    relay.user_writes(service)
    link_mail = next(mail for mail in relay.mailer.sent if mail.to_address == OWNER)
    assert re.search(rb"https://inbound\.example/copies/\S+\.eml\?expires=86400", link_mail.raw)
