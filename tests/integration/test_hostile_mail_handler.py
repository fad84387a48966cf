"""Hostile and malformed mail through the real handler on moto: the invariants of ``tests.support.hostile`` on what
moto's SES recorded, byte for byte (fewer examples than on the fakes: each one is a full invocation)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailflow.local.moto_ses import sent_bytes, sent_messages
from emailflow.outcomes import Action, Reason, RelayOutcome
from tests.support.faults import LEDGER
from tests.support.hostile import HostileMail, Sent, check_relay, hostile_mails, sender_of
from tests.support.relay_stack import RelayHarness

PLACEHOLDER = "service-0000000000000000@relay.example"


def _sent_since(count: int) -> list[Sent]:
    return [Sent(sent_bytes(message.raw_data), str(message.source), str(message.destinations[0]))
            for message in sent_messages()[count:]]


def test_relay_handler_hostile_mail_keeps_every_invariant(relay: RelayHarness) -> None:
    # Given generated hostile messages, each to a service of its own (so no rate limit interferes)
    examples = 0

    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(mail=hostile_mails(PLACEHOLDER), number=st.integers(0, 10**9))
    def run(mail: HostileMail, number: int) -> None:
        nonlocal examples
        owner = f"owner{number}@flats.example"
        _, address = relay.register([owner], "Flat")
        raw = mail.raw.replace(PLACEHOLDER.encode(), address.encode())
        before = len(sent_messages())

        # When SES invokes the handler for it (any exception fails the test)
        result = relay.deliver(raw, [address], mail.sender)

        # Then every invariant holds on what moto's SES recorded
        outcomes = [RelayOutcome(address, Action(outcome["action"]), Reason(outcome["reason"]))
                    for outcome in result["outcomes"]]
        check_relay(raw, [address], outcomes, _sent_since(before), relayed_to=owner, hidden=sender_of(raw))
        examples += 1
        LEDGER.hostile_moto += 1

    run()
    assert examples >= 30
