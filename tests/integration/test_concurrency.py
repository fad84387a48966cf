"""Concurrency: Lambda containers relaying at the same moment, against a moto server over HTTP.

In-process ``mock_aws`` is not thread-safe enough for this, so the template's resources live on a
``ThreadedMotoServer`` (127.0.0.1, a free port) with ``AWS_ENDPOINT_URL`` pointing at it. Each thread plays one
Lambda container: its own boto3 session and clients (on AWS, concurrent invocations run in separate containers,
never in one process). A ``threading.Barrier`` in a botocore hook holds every thread just before the write that
races, so the race happens every run instead of once in a while.

The server applies one request at a time (``AtomicMotoServer``). DynamoDB applies each request atomically - a
conditional put, a transaction, an ``ADD`` - but moto's backends do not under threads: without the lock, two
concurrent ``attribute_not_exists`` transactions on one item both succeeded now and then, and some answered
HTTP 500. What races here is the relay's own sequence of requests (read, then conditional write), as on AWS.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from emailflow import wiring
from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.adapters.s3 import S3MailStore
from emailflow.adapters.sesv2 import SesMailer
from emailflow.config import get_settings
from emailflow.events import inbound_mails
from emailflow.local.moto_ses import install_byte_exact_sesv2, sent_bytes, sent_messages
from emailflow.local.stack import deploy_locally
from emailflow.model import Service
from emailflow.outcomes import Action, RelayOutcome
from emailflow.relay import RelayContext, relay_messages
from emailflow.services import register_service, service_address
from tests.support.mail import load_eml, new_message_id, ses_receipt_event

OWNER = "owner@holiday-flats.example"
REPLIES = 12
ROUNDS = 4


class AtomicMotoServer(ThreadedMotoServer):
    """moto's threaded server, applying one request at a time (as DynamoDB applies each request atomically)."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            with lock:
                return list(app(environ, start_response))

        self._server = make_server(self._ip_address, self._port, one_at_a_time, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


@dataclass
class Container:
    """One Lambda container: the wiring of a cold start, on clients of its own."""

    context: RelayContext
    dynamodb: Any


@dataclass
class ServerStack:
    endpoint: str
    session: boto3.session.Session
    """One session for every container's clients: only the service models are shared (loading them is what costs
    time); each client has its own connection pool and its own event hooks."""

    def container(self) -> Container:
        settings = get_settings()
        session = self.session
        dynamodb = session.client("dynamodb")
        context = replace(
            wiring.relay_context(),
            directory=DynamoDirectory(settings.table_name, client=dynamodb),
            mailer=SesMailer(settings.configuration_set, client=session.client("sesv2")),
            mail_store=S3MailStore(settings.inbound_bucket, settings.inbound_prefix, client=session.client("s3")),
        )
        return Container(context, dynamodb)

    @staticmethod
    def register(owner: str = OWNER) -> tuple[Service, str]:
        relay = wiring.relay_context()
        service = register_service(relay.directory, relay.codebook, [owner], "Flat A",
                                   relay_domain=relay.addressing.domain)
        return service, service_address(relay.addressing, service)

    @staticmethod
    def store(raw: bytes, recipients: list[str], source: str) -> dict[str, Any]:
        settings = get_settings()
        message_id = new_message_id()
        boto3.client("s3").put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}",
                                      Body=raw)
        return ses_receipt_event(message_id, recipients, source)

    @staticmethod
    def copies_to(address: str) -> list[bytes]:
        return [sent_bytes(message.raw_data) for message in sent_messages() if message.destinations[0] == address]


@pytest.fixture(scope="module")
def server_stack() -> Iterator[ServerStack]:
    """The template's resources on a moto server in this process, reached over HTTP on a free port."""
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", endpoint)
            # The server shares this process's moto backends: start from empty ones, whatever ran before.
            with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")):  # noqa: S310
                pass
            install_byte_exact_sesv2()
            created = deploy_locally({"DomainName": "relay.example", "BrandName": "emailflow"})
            for name, value in created.function_environment("RelayFunction").items():
                patch.setenv(name, value)
            # Every reply of the burst belongs to one conversation: the per-pair brake is not what is tested here.
            patch.setenv("EMAILFLOW_PAIR_MESSAGES_PER_MINUTE", "1000")
            wiring.reset()
            yield ServerStack(endpoint, boto3.session.Session())
            wiring.reset()
    finally:
        server.stop()


def _hold_at(container: Container, barrier: threading.Barrier, marker: bytes) -> None:
    """Make the container's thread wait at ``barrier`` before sending a TransactWriteItems that holds ``marker``."""
    def wait(params: dict[str, Any], **_: Any) -> None:
        body = params.get("body", b"")
        if marker in (body if isinstance(body, bytes) else str(body).encode()):
            barrier.wait()

    container.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", wait)


def _run_at_once(jobs: list[Callable[[], list[RelayOutcome]]]) -> list[list[RelayOutcome]]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result(timeout=60) for future in futures]


def _relay(container: Container, event: dict[str, Any]) -> Callable[[], list[RelayOutcome]]:
    return lambda: relay_messages(inbound_mails(event), container.context)


def test_concurrency_two_first_messages_create_one_pair(server_stack: ServerStack) -> None:
    for round_number in range(ROUNDS):
        # Given a service, and two first messages from the same new user, each in its own container, both held
        # just before the transaction that creates the pair (so both have read "no pair yet")
        user = f"guest{round_number}@people.example"
        owner = f"owner{round_number}@flats.example"
        service, address = server_stack.register(owner)
        raw = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address,
                                                  "jane.doe@real-user.example": user})
        events = [server_stack.store(raw, [address], user) for _ in range(2)]
        containers = [server_stack.container() for _ in events]
        barrier = threading.Barrier(len(containers), timeout=30)
        for container in containers:
            _hold_at(container, barrier, b'"USR#')

        # When both are relayed at once
        results = _run_at_once([_relay(container, event) for container, event in zip(containers, events,
                                                                                     strict=True)])

        # Then there is one pair; both messages reached the service From its one user code; one started it
        [pair] = wiring.directory().list_pairs(service.code)
        outcomes = [outcome for result in results for outcome in result]
        assert [outcome.action for outcome in outcomes] == [Action.FORWARDED, Action.FORWARDED]
        assert sorted(outcome.new_conversation for outcome in outcomes) == [False, True]
        assert {outcome.conversation for outcome in outcomes} == {pair.user_code}
        copies = server_stack.copies_to(owner)
        assert len(copies) == 2
        assert all(f"user-{pair.user_code}@relay.example".encode() in copy for copy in copies)
        assert pair.user_messages == 2


def test_concurrency_replies_at_once_are_each_counted_once(server_stack: ServerStack) -> None:
    # Given a conversation
    owner, user = "owner-replies@flats.example", "guest-replies@people.example"
    service, address = server_stack.register(owner)
    first = load_eml("user_first_message.eml", {"service-placeholder@relay.example": address,
                                                "jane.doe@real-user.example": user})
    relay_messages(inbound_mails(server_stack.store(first, [address], user)), server_stack.container().context)
    [pair] = wiring.directory().list_pairs(service.code)
    user_address = f"user-{pair.user_code}@relay.example"

    # And REPLIES answers of the service, each in its own container, all held before closing their delivery
    events = []
    for index in range(REPLIES):
        raw = load_eml("service_reply.eml", {"owner@holiday-flats.example": owner,
                                             "Owner@Holiday-Flats.example": owner,
                                             "<reply-1@holiday-flats.example>": f"<reply-{index}@flats.example>",
                                             "user-placeholder@relay.example": user_address,
                                             "<ses-in-reply-to-placeholder>": "<none@nowhere.example>"})
        events.append(server_stack.store(raw, [user_address], owner))
    containers = [server_stack.container() for _ in events]
    barrier = threading.Barrier(len(containers), timeout=30)
    for container in containers:
        _hold_at(container, barrier, b'"SENT#')

    # When they are relayed at once
    results = _run_at_once([_relay(container, event) for container, event in zip(containers, events, strict=True)])

    # Then every reply reached the user once and the pair counted each exactly once
    assert [outcome.action for result in results for outcome in result] == [Action.FORWARDED] * REPLIES
    assert len(server_stack.copies_to(user)) == REPLIES
    [pair] = wiring.directory().list_pairs(service.code)
    assert (pair.user_messages, pair.service_messages) == (1, REPLIES)
    assert pair.awaiting_reply_since is None
    assert pair.first_reply_at is not None
