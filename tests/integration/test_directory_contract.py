"""Contract: the in-memory fake used by the unit tests behaves like the DynamoDB adapter on moto.

The same script of Directory calls (claims, races, releases, records, expiry, lookups) runs against both; every
result and the final pair figures must be equal. Without this, unit tests could pass against a fake that drifted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from emailflow.adapters.dynamodb import DynamoDirectory
from emailflow.config import get_settings
from emailflow.local.stack import LocalStack
from emailflow.model import DeliveryKey, Direction, FeedbackState, Pair, SentMessage, Service, ThreadRefs
from emailflow.ports import RelayFault, SenderBudget
from emailflow.senders import HeldMessage
from emailflow.services import RegistrationRequest
from tests.support.fakes import START, FakeClock, InMemoryDirectory


def _script(directory: Any, clock: FakeClock) -> list[tuple[str, object]]:
    results: list[tuple[str, object]] = []

    def call(name: str, *args: object) -> None:
        try:
            result: object = getattr(directory, name)(*args)
        except RelayFault:
            result = "RelayFault"
        results.append((name, result))

    service = Service("s1", ("o@x.example",), "S")
    call("put_service", service)
    call("put_service", service)
    call("set_service_status", Service("nope", ("a@b.example",), "n"))
    first = DeliveryKey("m1", "service-s1@relay.example")
    pair = Pair("s1", "u@x.example", "u1", START)
    refs = ThreadRefs("service:s1")
    call("load_for_user_mail", "s1", "u@x.example", first, refs)
    call("claim_delivery", first, pair, START + 100)
    call("claim_delivery", first, pair, START + 100)
    second = DeliveryKey("m2", "service-s1@relay.example")
    call("claim_delivery", second, Pair("s1", "u@x.example", "u2", START), START + 100)
    call("claim_delivery", second, Pair("s1", "v@x.example", "u1", START), START + 100)
    call("load_for_user_mail", "s1", "u@x.example", second, refs)
    call("release_delivery", second)
    call("release_delivery", first)
    call("claim_delivery", first, None, START + 100)
    sent = SentMessage("ses1", Direction.TO_SERVICE, "s1", "u1", "u@x.example", "<a@b>", "m1", START)
    call("record_sent", first, sent, pair, "service:s1", START + 1000)
    call("release_delivery", first)
    call("claim_delivery", first, None, START + 100)
    clock.now = START + 50
    call("record_sent", DeliveryKey("m3", "x"),
         SentMessage("ses2", Direction.TO_SERVICE, "s1", "u1", "u@x.example", None, "m3", START + 50), pair,
         "service:s1", START + 1000)
    clock.now = START + 60
    call("record_sent", DeliveryKey("m4", "x"),
         SentMessage("ses3", Direction.TO_USER, "s1", "u1", "o@x.example", "<r@o>", "m4", START + 60), pair,
         "user:u1", START + 1000)
    call("reject_delivery", DeliveryKey("m5", "x"), "send_rejected")
    call("claim_delivery", DeliveryKey("m5", "x"), None, START + 100)
    call("load_for_service_mail", "u1", "s1", "u@x.example", DeliveryKey("m5", "x"),
         ThreadRefs("user:u1", {"<ses1@e>": "ses1", "<ses9@e>": "ses9"}, ("<a@b>", "<r@o>")))
    call("load_for_user_mail", "s1", "u@x.example", first, ThreadRefs("service:s1", {"<ses3@e>": "ses3"}, ("<a@b>",)))
    clock.now = START + 100
    call("load_for_user_mail", "s1", "u@x.example", second, refs)
    call("claim_delivery", first, None, START + 300)
    call("load_for_service_mail", "zz", "s9", "nobody@x.example", first, refs)
    # mail to a user code: claimed on the alias item, given back, rejected, closed by a send
    reply = DeliveryKey("m8", "user-u1@relay.example")
    call("claim_for_user_code", "zz", reply, START + 400)
    call("claim_for_user_code", "u1", reply, START + 400)
    call("claim_for_user_code", "u1", reply, START + 400)
    call("release_delivery", reply, "u1")
    call("release_delivery", reply, "u1")
    call("claim_for_user_code", "u1", reply, START + 400)
    call("reject_delivery", reply, "send_rejected", "u1", START + 400)
    call("claim_for_user_code", "u1", reply, START + 400)
    call("load_for_service_mail", "u1", "s1", "u@x.example", reply, ThreadRefs("user:u1"))
    call("reject_delivery", reply, "send_rejected", "nobody", START + 400)
    sent_reply = DeliveryKey("m9", "user-u1@relay.example")
    call("claim_for_user_code", "u1", sent_reply, START + 150)
    call("record_sent", sent_reply,
         SentMessage("ses4", Direction.TO_USER, "s1", "u1", "o@x.example", None, "m9", START + 100), pair,
         "user:u1", START + 1000, START + 150)
    call("claim_for_user_code", "u1", sent_reply, START + 150)
    call("load_for_service_mail", "u1", "s1", "u@x.example", sent_reply, ThreadRefs("user:u1"))
    clock.now = START + 1000
    call("load_for_service_mail", "u1", "s1", "u@x.example", DeliveryKey("m5", "x"),
         ThreadRefs("user:u1", {"<ses1@e>": "ses1"}, ("<a@b>",)))
    call("load_for_service_mail", "u1", "s1", "u@x.example", DeliveryKey("m9", "user-u1@relay.example"),
         ThreadRefs("user:u1"))
    call("claim_for_user_code", "u1", DeliveryKey("m8", "user-u1@relay.example"), START + 2000)
    call("record_sent", DeliveryKey("m6", "x"), sent, Pair("s1", "nobody@x.example", "u9", START), "k", START)
    call("get_service", "s1")
    call("get_service", "s2")
    for _ in range(4):
        call("allow_notice", "digest-a", 7, 3, START + 7200)
    call("allow_notice", "digest-a", 8, 3, START + 7200)
    call("allow_notice", "digest-b", 7, 3, START + 7200)
    # the sender budget, counted by the claim's own write
    budget = SenderBudget("digest-a", 7, 2, START + 7200)
    for number in range(3):
        call("claim_delivery", DeliveryKey(f"b{number}", "service-s1@relay.example"), None, START + 100, budget)
    call("claim_delivery", DeliveryKey("b0", "service-s1@relay.example"), None, START + 100, budget)
    call("claim_delivery", DeliveryKey("b3", "service-s1@relay.example"), None, START + 100,
         SenderBudget("digest-a", 8, 2, START + 7200))
    call("claim_delivery", DeliveryKey("b4", "service-s1@relay.example"), None, START + 100,
         SenderBudget("digest-a-unverified", 7, 2, START + 7200))
    spent_first = DeliveryKey("b5", "service-s1@relay.example")
    call("claim_delivery", spent_first, Pair("s1", "w@x.example", "u7", START), START + 100, budget)
    call("load_for_user_mail", "s1", "w@x.example", spent_first, refs)
    call("claim_delivery", spent_first, Pair("s1", "u@x.example", "u8", START), START + 100, budget)
    call("claim_delivery", spent_first, Pair("s1", "w@x.example", "u7", START), START + 100,
         SenderBudget("digest-w", 7, 2, START + 7200))
    call("load_for_user_mail", "s1", "w@x.example", spent_first, refs)
    # feedback on a sent message (the bounces handler's calls)
    fed = SentMessage("ses1", Direction.TO_SERVICE, "s1", "u1", "u@x.example", "<a@b>", "m1", START,
                      recipient_address="o@x.example", user_address="u@x.example", recipient_name="S")
    call("feedback_context", "ses1", "o@x.example")
    call("record_bounce", fed, "o@x.example", None, START)
    call("record_bounce", fed, "o@x.example", None, START)
    call("feedback_context", "ses1", "o@x.example")
    call("set_bounce_state", "ses1", FeedbackState.RECORDED)
    call("feedback_context", "ses1", "o@x.example")
    call("record_bounce", replace(fed, ses_message_id="ses2"), "o@x.example", "permanent:General", START)
    call("get_service", "s1")
    call("record_delivery", fed, "o@x.example", START)
    call("record_delivery", fed, "o@x.example", START)
    call("feedback_context", "ses1", "o@x.example")
    call("record_complaint", fed, "complaint:abuse", START)
    call("record_complaint", fed, "complaint:abuse", START)
    call("feedback_context", "nope", None)
    call("load_for_service_mail", "u1", "s1", "u@x.example", DeliveryKey("m7", "x"), ThreadRefs("user:u1"))
    results.append(("list_pairs", sorted(directory.list_pairs("s1"), key=str)))
    # an operator's reads and repairs (emailflow.client)
    call("find_pair", "u1")
    call("find_pair", "nope")
    call("get_alias", "u1")
    call("get_alias", "nope")
    call("address_health", "o@x.example")
    call("resume_pair", "s1", "u@x.example", Direction.TO_SERVICE)
    call("resume_pair", "s1", "nobody@x.example", Direction.TO_USER)
    call("clear_service_undeliverable", "s1", "o@x.example")
    call("clear_service_undeliverable", "nope", "o@x.example")
    call("forget_address_health", "o@x.example")
    call("address_health", "o@x.example")
    call("get_service", "s1")
    call("find_pair", "u1")
    request = RegistrationRequest("k1", "f1", START + 1500)
    call("put_service_once", Service("s3", ("p@x.example",), "P"), request)
    call("put_service_once", Service("s4", ("p@x.example",), "P"), request)
    call("put_service_once", Service("s4", ("p@x.example",), "P"), RegistrationRequest("k1", "f2", START + 1500))
    call("put_service_once", Service("s1", ("p@x.example",), "P"), RegistrationRequest("k2", "f1", START + 1500))
    call("update_service", Service("s3", ("q@x.example", "p@x.example"), "Q", context={"a": "b"}))
    call("update_service", Service("s9", ("q@x.example",), "Q"))
    call("get_service", "s3")
    clock.now = START + 2000
    call("put_service_once", Service("s5", ("p@x.example",), "P"), request)
    call("get_service", "s5")
    # new senders held for approval (emailflow.senders, emailflow.approvals)
    held = HeldMessage("h1", "s1", "anna@x.example", "m9", "user-u1@relay.example", "a@x.example", "PASS", "GRAY",
                       "PASS", START + 2000, START + 3000)
    call("hold_message", held, "digest-anna")
    call("hold_message", held, "digest-anna")
    call("hold_message", replace(held, hold_id="h2"), "digest-anna")
    call("hold_message", replace(held, hold_id="h3", service_code="s3"), "digest-anna")
    # further messages from the same address, kept with its pending approval
    call("hold_later", replace(held, hold_id="h5", inbound_message_id="m10"), "digest-anna", 2)
    call("hold_later", held, "digest-anna", 2)
    call("hold_message", held, "digest-anna")
    call("hold_later", replace(held, hold_id="h6", inbound_message_id="m11"), "digest-anna", 2)
    call("hold_later", replace(held, hold_id="h7", inbound_message_id="m12"), "digest-anna", 2)
    call("hold_later", replace(held, hold_id="h8", service_code="s9"), "digest-anna", 2)
    call("close_hold", replace(held, hold_id="h3", service_code="s3", sender_key="digest-anna"))
    call("close_hold", replace(held, sender_key="digest-anna"))
    call("hold_later", replace(held, hold_id="h9", inbound_message_id="m13"), "digest-anna", 5)
    call("close_hold", replace(held, sender_key="digest-anna"))
    call("close_hold", held)
    call("get_held", "h1")
    call("get_held", "h2")
    held_delivery = DeliveryKey("m9", "user-u1@relay.example")
    call("claim_delivery", held_delivery, None, START + 5000)
    call("reopen_delivery", held_delivery, "stranger_held")
    call("reject_delivery", held_delivery, "stranger")
    call("reopen_delivery", held_delivery, "stranger_held")
    call("reject_delivery", held_delivery, "stranger_held")
    call("reopen_delivery", held_delivery, "stranger_held")
    call("reopen_delivery", held_delivery, "stranger_held")
    call("approve_held", "h1", START + 2500)
    call("approve_held", "h1", START + 2500)
    call("hold_message", held, "digest-anna")
    call("get_held", "h1")
    call("approve_held", "h3", START + 3000)
    clock.now = START + 3000
    call("hold_message", replace(held, hold_id="h4", expires_at=START + 4000), "digest-anna")
    call("hold_later", replace(held, hold_id="h10", inbound_message_id="m14"), "digest-anna", 5)
    call("close_hold", replace(held, hold_id="h4", sender_key="digest-anna"))
    return results


def test_directory_fake_matches_dynamodb_adapter(stack: LocalStack) -> None:
    # Given the real adapter on moto and the fake, each with its own clock at the same start
    real_clock, fake_clock = FakeClock(), FakeClock()
    real = DynamoDirectory(get_settings().table_name, clock=real_clock)
    fake = InMemoryDirectory(fake_clock)

    # When the same script of calls runs on both
    real_results = _script(real, real_clock)
    fake_results = _script(fake, fake_clock)

    # Then every call returned the same, step by step
    assert len(real_results) == len(fake_results) == 131
    for (name, expected), (_, actual) in zip(real_results, fake_results, strict=True):
        assert actual == expected, name
