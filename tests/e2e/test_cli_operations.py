"""Operating the relay with the CLI against a running local relay: service update, conversations, lifting
suppressions, redrive from the dead-letter queue and dry-run replay. Mail goes over real SMTP; the CLI finds the
relay through its stack outputs, as it finds a deployed one."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from emailflow.adapters.clients import sesv2_client
from emailflow.cli.main import cli
from emailflow.local.server import LocalRelay
from tests.support.faults import error_answer, injector
from tests.support.local import Register, compose, mailbox, parsed, send, unique_address


def _run(relay: LocalRelay, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--stack", relay.options.stack_name, *args])


def _json(relay: LocalRelay, *args: str) -> Any:
    result = _run(relay, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _write(relay: LocalRelay, user: str, to: str, subject: str = "Is the flat free?") -> None:
    send(relay.smtp_host, relay.smtp_port, user, [to], compose(("Jane", user), to, subject, "Hello\n"))


def _user_code_address(relay: LocalRelay, service_code: str) -> str:
    [pair] = relay.operations().directory.list_pairs(service_code)
    return f"user-{pair.user_code}@relay.example"


def test_cli_service_with_two_mailboxes_updated_and_idempotent(local_relay: LocalRelay, maildirs: Path) -> None:
    # Given a service registered with two mailboxes and an idempotency key, twice (a retried script)
    owner, bookings = unique_address("owner", "flats.example"), unique_address("bookings", "flats.example")
    first = _json(local_relay, "service", "add", owner, bookings, "--name", "Flats", "--idempotency-key", "k-1")
    again = _json(local_relay, "service", "add", owner, bookings, "--name", "Flats", "--idempotency-key", "k-1")
    conflict = _run(local_relay, "service", "add", owner, "--name", "Other", "--idempotency-key", "k-1")

    # Then one service exists, the first mailbox receives, and the reused key with other content is refused
    assert again == first
    assert first["addresses"] == [owner, bookings]
    assert (conflict.exit_code, conflict.stderr) == (
        1, "Error: this idempotency key was used for a different request\n")

    # When the mailboxes are swapped and the name changed
    updated = _json(local_relay, "service", "update", first["code"], "--address", bookings, "--address", owner,
                    "--name", "Garcia Flats")
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, first["address"])

    # Then the public address is the same, and mail now reaches the new first mailbox under the new name
    assert (updated["address"], updated["addresses"], updated["name"]) == (first["address"], [bookings, owner],
                                                                            "Garcia Flats")
    [copy] = mailbox(maildirs, bookings)
    assert mailbox(maildirs, owner) == []
    assert parsed(copy)["From"].addresses[0].display_name == "Jane via emailflow"
    assert _run(local_relay, "service", "update", first["code"]).exit_code == 2


def test_cli_conversation_show_and_address_clear_after_a_bounce(local_relay: LocalRelay, register: Register) -> None:
    # Given a conversation whose service address bounced for good (SES's simulator, through the bounces function)
    service, public = register("bounce@simulator.amazonses.com", "Bouncing Owner")
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, public)
    conversation_address = _user_code_address(local_relay, service.code)

    # When the operator looks at the conversation and the service
    shown = _json(local_relay, "conversation", "show", conversation_address)
    table = _run(local_relay, "conversation", "show", conversation_address)
    before = _json(local_relay, "service", "show", service.code)

    # Then figures and state are there, and no real address of either side is
    assert (shown["user_messages"], shown["service_messages"], shown["service_address"]) == (1, 0, public)
    assert shown["awaiting_reply_since"] is not None
    assert user not in table.stdout
    assert "simulator" not in table.stdout
    assert list(before["undeliverable"]) == ["bounce@simulator.amazonses.com"]

    # When the operator clears the address (twice)
    cleared = _run(local_relay, "address", "clear", "bounce@simulator.amazonses.com")
    again = _run(local_relay, "address", "clear", "Bounce@Simulator.AmazonSES.com")

    # Then the suppression is lifted on the service, and the second run finds nothing left
    assert cleared.exit_code == 0, cleared.output
    assert f"cleared service {service.code}: " in cleared.stdout
    assert _json(local_relay, "service", "show", service.code)["undeliverable"] == {}
    assert again.stdout == "Bounce@Simulator.AmazonSES.com: nothing to clear\n"


def test_cli_address_clear_lifts_a_complaint_suspension(local_relay: LocalRelay, register: Register) -> None:
    # Given a conversation the service's mailbox complained about (SES's complaint simulator)
    service, public = register("complaint@simulator.amazonses.com", "Complaining Owner")
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, public)
    conversation_address = _user_code_address(local_relay, service.code)
    assert _json(local_relay, "conversation", "show", conversation_address)["suspended"] == {
        "to_service": "complaint:abuse"}

    # When the operator clears the service's address
    cleared = _run(local_relay, "address", "clear", "complaint@simulator.amazonses.com")

    # Then the conversation relays to the service again
    assert f"cleared conversation {conversation_address.split('@')[0].removeprefix('user-')} to_service" in \
        cleared.stdout
    assert _json(local_relay, "conversation", "show", conversation_address)["suspended"] == {}


def test_cli_conversation_show_refuses_a_service_address(local_relay: LocalRelay, register: Register) -> None:
    _, public = register(unique_address("owner", "flats.example"), "Flats")
    result = _run(local_relay, "conversation", "show", public)
    assert (result.exit_code, result.stderr) == (1, "Error: not a user code or user address of this relay\n")


@contextmanager
def _sending_paused() -> Iterator[None]:
    """SES refuses every send (account sending paused) while the block runs: Lambda's attempts all fail."""
    with injector() as faults:
        faults.fail_call(sesv2_client(), "SendEmail", lambda: error_answer("SendingPausedException", 400), times=-1)
        yield


def _new_service_and_user(register: Register) -> tuple[str, str, str]:
    """(owner, service address, user): a fresh service and a user who has not written yet."""
    owner = unique_address("owner", "flats.example")
    _, public = register(owner, "Flats")
    return owner, public, unique_address("jane", "real-user.example")


def test_cli_redrive_relays_parked_mail_once_and_empties_the_queue(local_relay: LocalRelay, register: Register,
                                                                  maildirs: Path) -> None:
    # Given a message parked in the dead-letter queue: SES sending was paused for all of Lambda's attempts
    owner, public, user = _new_service_and_user(register)
    with _sending_paused():
        _write(local_relay, user, public)
    assert mailbox(maildirs, owner) == []

    # When the operator redrives the queue once sending is back
    rows = _json(local_relay, "redrive")
    local_relay.settle()
    mine = [row for row in rows if row["recipient"] == public]

    # Then the mail is relayed once and the queue is empty
    assert [(row["action"], row["reason"]) for row in mine] == [("forwarded", "relayed")]
    assert len(mailbox(maildirs, owner)) == 1
    empty = _run(local_relay, "redrive")
    assert (empty.exit_code, empty.stderr) == (0, "the dead-letter queue is empty\n")

    # When the same message is redriven again from S3, by its id, Then nothing more is sent
    by_id = _json(local_relay, "redrive", str(mine[0]["message_id"]))
    local_relay.settle()
    assert [(row["action"], row["reason"]) for row in by_id] == [("duplicate", "duplicate")]
    assert len(mailbox(maildirs, owner)) == 1


def test_cli_redrive_leaves_mail_parked_while_the_fault_lasts(local_relay: LocalRelay, register: Register,
                                                             maildirs: Path) -> None:
    # Given a parked message, and SES still paused during the redrive
    owner, public, user = _new_service_and_user(register)
    with _sending_paused():
        _write(local_relay, user, public)
        failed = _run(local_relay, "redrive", "--json")

    # Then the redrive says so, exits 1, and the message stays parked for the next one
    assert failed.exit_code == 1
    assert any(row["action"] == "left parked" and row["reason"].startswith("SendFailed")
               for row in json.loads(failed.stdout))
    assert mailbox(maildirs, owner) == []
    rows = _json(local_relay, "redrive")
    local_relay.settle()
    assert [row["action"] for row in rows if row["recipient"] == public] == ["forwarded"]
    assert len(mailbox(maildirs, owner)) == 1


def test_cli_replay_dry_run_shows_decision_and_headers_without_effects(local_relay: LocalRelay, register: Register,
                                                                       maildirs: Path) -> None:
    # Given a message relayed once
    owner = unique_address("owner", "flats.example")
    service, public = register(owner, "Flats")
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, public, subject="Replay me")
    conversation_address = _user_code_address(local_relay, service.code)
    before = _json(local_relay, "conversation", "show", conversation_address)
    [stored] = [item for item in local_relay.operations().mail_store().list_stored()
                if b"Replay me" in local_relay.operations().mail_store().get_raw(item.message_id)]

    # When the operator replays it, dry
    [result] = _json(local_relay, "replay", "--dry-run", stored.message_id)
    text = _run(local_relay, "replay", "--dry-run", stored.message_id)
    local_relay.settle()

    # Then it says what the relay would do now, with the rewritten header block, and nothing happened
    assert (result["action"], result["reason"], result["recipient"]) == ("forwarded", "relayed", public)
    [would] = result["would_send"]
    assert would["to"] == owner
    assert would["from"] == conversation_address
    assert "Subject: Replay me" in would["headers"]
    assert user not in would["headers"]
    assert text.stdout.startswith(f"== {stored.message_id} -> {public}: forwarded (relayed)\n")
    assert len(mailbox(maildirs, owner)) == 1
    assert _json(local_relay, "conversation", "show", conversation_address) == before
    assert _run(local_relay, "replay", stored.message_id).exit_code == 2


def test_readme_python_client_snippet_runs_against_the_relay(local_relay: LocalRelay) -> None:
    # Given the README's web-form example, pointed at the running relay's stack
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    code = snippet.replace('Relay.from_stack("emailflow")', f'Relay.from_stack("{local_relay.options.stack_name}")')

    # When it runs
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README's example

    # Then it registered the listing's service once, idempotently, and disabled it at the end
    address = namespace["address"]
    assert namespace["contact_address"]("4711", "owner@flats.example", "María García") == address
    shown = _json(local_relay, "service", "show", address)
    assert (shown["status"], shown["context"]) == ("disabled", {"listing": "4711"})


def test_new_sender_is_allowed_through_the_link_in_the_approval_mail(local_relay: LocalRelay, register: Register,
                                                                    maildirs: Path) -> None:
    # Given a conversation: a user wrote to a service over SMTP, and the owner received it
    owner, colleague = unique_address("owner", "flats.example"), unique_address("anna", "flats.example")
    service, public = register(owner, "Flats")
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, public)
    [first] = mailbox(maildirs, owner)
    user_code_address = parsed(first)["Reply-To"].addresses[0].addr_spec

    # When a colleague answers from an address the service never registered
    reply = compose(("Anna", colleague), user_code_address, "Re: Is the flat free?", "Yes it is.\n",
                    in_reply_to=parsed(first)["Message-ID"])
    send(local_relay.smtp_host, local_relay.smtp_port, colleague, [user_code_address], reply)

    # And writes again before the owner answered
    second = compose(("Anna", colleague), user_code_address, "Re: Is the flat free?", "And the garage too.\n",
                     in_reply_to=parsed(first)["Message-ID"])
    send(local_relay.smtp_host, local_relay.smtp_port, colleague, [user_code_address], second)

    # Then the user receives nothing, the colleague the error mail (twice), the owner one approval mail with a link
    assert mailbox(maildirs, user) == []
    refused = mailbox(maildirs, colleague)
    assert len(refused) == 2
    assert all("unregistered address" in str(parsed(mail)["Subject"]) for mail in refused)
    [_, approval] = mailbox(maildirs, owner)
    text = parsed(approval).get_body(("plain",))
    assert text is not None
    [link] = re.findall(r"http://127\.0\.0\.1:\d+/senders/allow\?token=\S+", str(text.get_content()))
    assert link.startswith(local_relay.approval_url)

    # When the owner opens the link in a browser: the page, then its button (a form POST)
    with urllib.request.urlopen(link, timeout=30) as page:  # noqa: S310 - loopback
        html = page.read().decode()
    token = re.search(r'name="token" value="([^"]+)"', html)
    assert token is not None
    form = urllib.parse.urlencode({"token": token.group(1)}).encode()
    with urllib.request.urlopen(urllib.request.Request(local_relay.approval_url, data=form), timeout=30) as done:  # noqa: S310
        allowed = (done.status, done.read().decode())
    local_relay.settle()

    # Then both held replies reach the user From the service's relay address, and the colleague is registered
    assert f"Allow {colleague}?" in html
    assert allowed[0] == 200
    assert "The held reply was delivered." in allowed[1]
    assert "The later reply from this address, kept until now, was delivered too." in allowed[1]
    delivered = mailbox(maildirs, user)
    texts = []
    for mail in delivered:
        assert parsed(mail)["From"].addresses[0].addr_spec == public
        assert colleague.encode() not in mail.lower()
        plain = parsed(mail).get_body(("plain",))
        assert plain is not None
        texts.append(str(plain.get_content()).strip())
    assert sorted(texts) == ["And the garage too.", "Yes it is."]
    assert _json(local_relay, "service", "show", service.code)["addresses"] == [owner, colleague]


def _api(relay: LocalRelay, method: str, path: str, body: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(relay.api_url + path, data=data, method=method,  # noqa: S310 - loopback
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_marketplace_api_on_loopback_registers_a_service_the_relay_then_serves(local_relay: LocalRelay,
                                                                              maildirs: Path) -> None:
    # Given local mode's HTTP API (unsigned on loopback; SigV4 on AWS)
    owner = unique_address("owner", "flats.example")
    registration = {"addresses": [owner], "name": "Flats by the API", "context": {"listing": "88"}}
    key = {"idempotency-key": f"listing-88-{owner}"}

    # When the marketplace registers a listing twice with the same key, and once more with another body
    created = _api(local_relay, "POST", "/services", registration, key)
    replayed = _api(local_relay, "POST", "/services", registration, key)
    conflict = _api(local_relay, "POST", "/services", {**registration, "name": "Other"}, key)

    # Then it is created once (201, then 200 with the same service), and the reused key is refused (409)
    assert created[0] == 201
    assert replayed == (200, created[1])
    assert conflict[0] == 409
    address = created[1]["address"]

    # And mail to the address it answered reaches the owner over SMTP, and its stats are one GET away
    user = unique_address("jane", "real-user.example")
    _write(local_relay, user, address)
    [copy] = mailbox(maildirs, owner)
    assert parsed(copy)["To"].addresses[0].addr_spec == owner
    status, stats = _api(local_relay, "GET", f"/services/{urllib.parse.quote(address)}/stats")
    assert (status, stats["conversations"]) == (200, 1)
    assert _api(local_relay, "GET", "/services/service-0000000000000000/stats")[0] == 404
