"""Hostile and malformed mail through the whole relay on fakes: every invariant of ``tests.support.hostile`` holds
for generated header blocks and bodies, in both directions, and for the classic attacks one by one."""

from __future__ import annotations

import base64
import email.parser
import email.policy
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailflow.codes import CodeKind
from emailflow.model import Service
from emailflow.outcomes import RelayOutcome
from emailflow.relay import RelayContext, relay_inbound
from emailflow.services import register_service, service_address
from tests.support.fakes import DictMailStore, FakeClock, InMemoryDirectory, RecordingMailer, inbound_mail, make_context
from tests.support.faults import LEDGER
from tests.support.hostile import USER, HostileMail, Sent, check_relay, hostile_mails, sender_of
from tests.support.mail import load_eml, new_message_id

OWNER = "owner@holiday-flats.example"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Relay:
    clock: FakeClock = field(default_factory=FakeClock)
    mailer: RecordingMailer = field(default_factory=RecordingMailer)
    store: DictMailStore = field(default_factory=DictMailStore)

    def __post_init__(self) -> None:
        self.directory = InMemoryDirectory(self.clock)
        self.context: RelayContext = make_context(directory=self.directory, mailer=self.mailer,
                                                  mail_store=self.store, clock=self.clock)
        self.service: Service = register_service(self.directory, self.context.codebook, [OWNER], "Flat",
                                                 clock=self.clock)
        self.address = service_address(self.context.addressing, self.service)

    def deliver(self, raw: bytes, recipients: list[str], source: str) -> list[RelayOutcome]:
        message_id = new_message_id()
        self.store.put(message_id, raw)
        return relay_inbound(inbound_mail(message_id, recipients, source), self.context)

    def sent_since(self, count: int) -> list[Sent]:
        return [Sent(mail.raw, mail.from_address, mail.to_address) for mail in self.mailer.sent[count:]]

    def start_conversation(self) -> str:
        """A first message from USER; returns the user's relay address."""
        self.deliver(load_eml("user_first_message.eml", {"service-placeholder@relay.example": self.address}),
                     [self.address], USER)
        return self.mailer.sent[-1].from_address


@PROPERTY
@given(data=st.data())
def test_relay_hostile_mail_to_a_service_keeps_every_invariant(data: st.DataObject) -> None:
    # Given a service, and a generated hostile message to it
    relay = Relay()
    mail: HostileMail = data.draw(hostile_mails(relay.address))

    # When it is relayed (any exception fails the test)
    outcomes = relay.deliver(mail.raw, [relay.address], mail.sender)

    # Then every invariant holds
    check_relay(mail.raw, [relay.address], outcomes, relay.sent_since(0), relayed_to=OWNER,
                hidden=sender_of(mail.raw))
    LEDGER.hostile_unit += 1


@PROPERTY
@given(data=st.data())
def test_relay_hostile_mail_to_a_user_keeps_every_invariant(data: st.DataObject) -> None:
    # Given a conversation, and a generated hostile message from the service's registered address to the user code
    relay = Relay()
    user_address = relay.start_conversation()
    mail: HostileMail = data.draw(hostile_mails(user_address, sender=OWNER))
    before = len(relay.mailer.sent)

    # When it is relayed
    outcomes = relay.deliver(mail.raw, [user_address], mail.sender)

    # Then every invariant holds: the service's real address appears nowhere in what reaches the user
    check_relay(mail.raw, [user_address], outcomes, relay.sent_since(before), relayed_to=USER,
                hidden=[OWNER, *sender_of(mail.raw)])
    LEDGER.hostile_unit += 1


def test_relay_hostile_generator_gets_mail_past_the_policy() -> None:
    # Given 150 generated messages, each to a fresh relay (the address placeholder swapped for its service's)
    template = Relay()
    forwarded = 0

    @settings(max_examples=150, deadline=None, database=None)
    @given(mail=hostile_mails(template.address))
    def run(mail: HostileMail) -> None:
        nonlocal forwarded
        relay = Relay()
        raw = mail.raw.replace(template.address.encode(), relay.address.encode())
        outcomes = relay.deliver(raw, [relay.address], mail.sender)
        forwarded += sum(outcome.reason.value == "relayed" for outcome in outcomes)

    # When they are relayed
    run()

    # Then a good share is forwarded: the invariants on forwarded mail are checked on many cases, not a few
    assert forwarded >= 30


def test_relay_hostile_codes_are_parsed_from_the_user_code_kind() -> None:
    # Given a code of the service kind used as a user address (a forgery), Then it is an invalid code
    relay = Relay()
    forged = relay.context.addressing.address(CodeKind.USER, relay.service.code)
    [outcome] = relay.deliver(b"From: a@b.example\r\nTo: " + forged.encode() + b"\r\n\r\nx", [forged], "a@b.example")
    assert outcome.reason.value == "invalid_code"


# -- the classic attacks and breakages, one by one ----------------------------------------------------------------

SERVICE = "service-placeholder@relay.example"
B64_CEO = "Y2VvQGJhbmsuZXhhbXBsZQ=="
"""base64 of ceo@bank.example"""


def _message(*fields: bytes, body: bytes = b"Hello,\r\nis the flat free?\r\n") -> bytes:
    return b"\r\n".join(fields) + b"\r\n\r\n" + body


FROM_USER = b"From: Jane <" + USER.encode() + b">"
TO_SERVICE = b"To: " + SERVICE.encode()
CASES: dict[str, tuple[bytes, str]] = {
    "display name with CRLF and a Bcc": (_message(b'From: "Jane\r\nBcc: victim@elsewhere.example" <' + USER.encode()
                                                  + b">", TO_SERVICE), "invalid_from"),
    "display name with a bare CR and a Reply-To": (_message(b"From: Jane\rReply-To: attacker@evil.example <"
                                                           + USER.encode() + b">", TO_SERVICE), "multiple_from"),
    "subject with a bare CR and a Reply-To": (_message(FROM_USER, TO_SERVICE,
                                                       b"Subject: hi\rReply-To: attacker@evil.example"), "relayed"),
    "subject with a bare CR and a second From": (_message(FROM_USER, TO_SERVICE,
                                                          b"Subject: hi\rFrom: ceo@bank.example"), "relayed"),
    "content type with a bare CR": (_message(FROM_USER, TO_SERVICE,
                                             b"Content-Type: text/plain\rBcc: x@y.example"), "relayed"),
    "NUL in the display name and subject": (_message(b'From: "Ja\x00ne" <' + USER.encode() + b">", TO_SERVICE,
                                                     b"Subject: a\x00b"), "relayed"),
    "encoded word that decodes to an address": (_message(b"From: =?utf-8?b?" + B64_CEO.encode() + b"?= <"
                                                         + USER.encode() + b">", TO_SERVICE), "relayed"),
    "encoded word that decodes to line breaks": (_message(b"From: =?utf-8?q?Jane=0D=0ABcc=3A_x=40y.example?= <"
                                                          + USER.encode() + b">", TO_SERVICE,
                                                          b"Subject: =?utf-8?q?a=0D=0A=0D=0Abody?="), "relayed"),
    "encoded word that decodes to the sender's own address": (
        _message(b"From: Jane <" + USER.encode() + b">", TO_SERVICE,
                 b"Subject: =?utf-8?b?" + base64.b64encode(USER.encode()) + b"?="), "relayed"),
    "encoded word with an 8-bit charset name": (_message(b"From: =?iso-88\xff59-1?q?Ren=E9e?= <" + USER.encode() + b">",
                                                         TO_SERVICE, b"Subject: =?utf-\xc3\xa98?b?SGk=?="), "relayed"),
    "encoded word with a NUL in its charset name": (_message(FROM_USER, TO_SERVICE, b"Subject: =?utf-\x008?q?x?="),
                                                     "relayed"),
    "NUL in the charset of a text part": (_message(FROM_USER, TO_SERVICE, b'Content-Type: text/plain; charset="u\x00"',
                                                   body=b"Jane <" + USER.encode() + b"> wrote\r\n"), "relayed"),
    "NUL in the Message-ID": (_message(FROM_USER, b"To: other@example.net", b"Message-ID: <a\x00b@host.example>"),
                              "bcc"),
    "an address in a field name": (_message(FROM_USER, TO_SERVICE, b"Content-" + USER.encode() + b"Type: text/plain"),
                                   "relayed"),
    "white space before the colon": (_message(FROM_USER, TO_SERVICE, b"Content-Type : text/plain",
                                              b"Subject : hi"), "relayed"),
    "a field name of 900 characters": (_message(FROM_USER, TO_SERVICE, b"Content-" + b"x" * 900 + b": y"),
                                       "relayed"),
    "control character in the Date": (_message(FROM_USER, TO_SERVICE, b"Date: W\x15d, 25 Nov 2026 15:00:00 +0000"),
                                      "relayed"),
    "Date with a huge zone offset": (_message(FROM_USER, TO_SERVICE, b"Date: Wed, 25 Nov 2026 13:30:00 +0100000000000"
                                                                     b"00000000\x01"), "relayed"),
    "encoded word as the local part": (_message(b"From: <=?utf-8?q?=22a=0D=0Ab?=@real-user.example>", b"To: x@y"),
                                       "invalid_from"),
    "unbalanced quote in the local part": (_message(b'From: <"jane@real-user.example>', TO_SERVICE), "invalid_from"),
    "leading dot in the local part": (_message(b"From: <.jane@real-user.example>", TO_SERVICE), "invalid_from"),
    "IDN domain that maps to a space": (_message(b"From: <jane@real-us\xc2\xb8r.example>", TO_SERVICE),
                                        "invalid_from"),
    "quotes and angle brackets in the display name": (_message(b'From: "<ceo@bank.example>" \\"x\\" <'
                                                               + USER.encode() + b">", TO_SERVICE), "relayed"),
    "a relay address as display name": (_message(b'From: "' + SERVICE.encode() + b'" <' + USER.encode() + b">",
                                                 TO_SERVICE), "relayed"),
    "two addresses in one From": (_message(b"From: Jane <" + USER.encode() + b">, ceo@bank.example", TO_SERVICE),
                                  "multiple_from"),
    "two From fields": (_message(FROM_USER, b"From: ceo@bank.example", TO_SERVICE), "multiple_from"),
    "no From": (_message(TO_SERVICE, b"Subject: hi"), "no_from"),
    "empty From": (_message(b"From: ", TO_SERVICE), "no_from"),
    "two To fields": (_message(FROM_USER, TO_SERVICE, TO_SERVICE), "relayed"),
    "no To": (_message(FROM_USER, b"Subject: hi"), "bcc"),
    "IDN sender in Unicode": (_message("From: Jörg <jane@bücher.example>".encode(), TO_SERVICE,
                                       "Subject: from jane@bücher.example".encode(),
                                       b"Content-Type: text/plain; charset=utf-8",
                                       body="On Tue, jane@bücher.example wrote:\r\n".encode()), "relayed"),
    "IDN sender in punycode": (_message(b"From: <jane@xn--bcher-kva.example>", TO_SERVICE,
                                        "Subject: von jane@bücher.example".encode()), "relayed"),
    "quoted local part": (_message(b'From: <"jane.doe"@real-user.example>', TO_SERVICE), "relayed"),
    "quoted local part with a space": (_message(b'From: <"jane doe"@real-user.example>', TO_SERVICE),
                                       "invalid_from"),
    "non-ASCII local part": (_message("From: <jörg@real-user.example>".encode(), TO_SERVICE), "invalid_from"),
    "control character in the address": (_message(b"From: <ja\x01ne@real-user.example>", TO_SERVICE),
                                         "invalid_from"),
    "Latin-1 bytes everywhere": (_message(b"From: Ren\xe9e <" + USER.encode() + b">", TO_SERVICE,
                                          b"Subject: R\xe9servation \xe9t\xe9", b"Content-Description: pi\xe8ce",
                                          b"Content-Type: text/plain; charset=iso-8859-1; name=\"r\xe9sum\xe9.txt\"",
                                          body=b"Bonjour, \xe0 bient\xf4t\r\n"), "relayed"),
    "UTF-8 file name in Content-Disposition": (_message(FROM_USER, TO_SERVICE, b"MIME-Version: 1.0",
                                                        "Content-Disposition: attachment; filename=\"résumé.pdf\""
                                                        .encode()), "relayed"),
    "invalid UTF-8 in the subject": (_message(FROM_USER, TO_SERVICE, b"Subject: \xc3\x28 \xff\xfe"), "relayed"),
    "subject line of 5000 bytes": (_message(FROM_USER, TO_SERVICE, b"Subject: " + b"x" * 5000), "relayed"),
    "subject of 5000 words on one line": (_message(FROM_USER, TO_SERVICE, b"Subject: " + b"ab " * 1700), "relayed"),
    "display name of 3000 bytes": (_message(b"From: " + b"J" * 3000 + b" <" + USER.encode() + b">", TO_SERVICE),
                                   "relayed"),
    "References of 3000 bytes on one line": (_message(FROM_USER, TO_SERVICE, b"References: " + b" ".join(
        f"<id{index}@host.example>".encode() for index in range(150))), "relayed"),
    "Content-Type line of 1500 bytes": (_message(FROM_USER, TO_SERVICE, b'Content-Type: text/plain; name="'
                                                 + b"n" * 1500 + b'"'), "relayed"),
    "Date line of 1500 bytes": (_message(FROM_USER, TO_SERVICE, b"Date: " + b"1" * 1500), "relayed"),
    "unknown field of 10000 bytes": (_message(FROM_USER, TO_SERVICE, b"X-Long: " + b"z" * 10000), "relayed"),
    "truncated in the header block": (_message(FROM_USER, TO_SERVICE)[:60], "bcc"),
    "truncated after the field name": (FROM_USER + b"\r\n" + TO_SERVICE + b"\r\nSubject:", "relayed"),
    "truncated inside an encoded word": (FROM_USER + b"\r\n" + TO_SERVICE + b"\r\nSubject: =?utf-8?b?SGVsbG",
                                         "relayed"),
    "truncated inside the From field": (b"From: Jane <jane.do", "invalid_from"),
    "no body and no empty line": (FROM_USER + b"\r\n" + TO_SERVICE, "relayed"),
    "empty message": (b"", "no_from"),
    "LF line endings and NUL in the body": (
        _message(FROM_USER, TO_SERVICE, body=b"a\x00b\rc\n").replace(b"\r\n", b"\n"), "relayed"),
}


def _deliver_case(raw: bytes) -> tuple[Relay, list[RelayOutcome], bytes]:
    relay = Relay()
    raw = raw.replace(SERVICE.encode(), relay.address.encode())
    sender = "jane@b\u00fccher.example" if "b\u00fccher".encode() in raw or b"xn--bcher" in raw else USER
    outcomes = relay.deliver(raw, [relay.address], sender)
    check_relay(raw, [relay.address], outcomes, relay.sent_since(0), relayed_to=OWNER, hidden=sender_of(raw))
    LEDGER.hostile_unit += 1
    return relay, outcomes, raw


@pytest.mark.parametrize(("raw", "reason"), list(CASES.values()), ids=list(CASES))
def test_relay_hostile_case_keeps_every_invariant(raw: bytes, reason: str) -> None:
    # Given a hostile or broken message to a service (When relayed, Then every invariant holds, checked inside)
    _, outcomes, _ = _deliver_case(raw)

    # And it ends with the expected reason
    assert [outcome.reason.value for outcome in outcomes] == [reason]


def _relayed_header_block(relay: Relay) -> bytes:
    [copy] = [mail for mail in relay.mailer.sent if mail.to_address == OWNER]
    return copy.header_block


@pytest.mark.parametrize("case", ["subject with a bare CR and a Reply-To", "subject with a bare CR and a second From",
                                  "content type with a bare CR", "encoded word that decodes to line breaks"])
def test_relay_injected_field_never_reaches_the_recipient(case: str) -> None:
    # Given a message that smuggles a field through a display name or the subject
    relay, _, _ = _deliver_case(CASES[case][0])

    # When the stdlib (as a mail client) reads what was sent
    parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
        _relayed_header_block(relay) + b"\r\n\r\n")

    # Then there is one From and one Reply-To, both the relay's, and no smuggled field (its text may remain inside
    # the field it was hidden in, harmless)
    assert [str(value) for value in parsed.get_all("Reply-To", [])] == [relay.mailer.sent[0].from_address]
    [sender] = parsed.get_all("From", [])
    assert "ceo@bank" not in str(sender).lower()
    assert {name.lower() for name in parsed} <= {"from", "to", "reply-to", "subject", "date", "content-type",
                                                 "x-emailflow-loop"}


def test_relay_utf8_file_name_is_sent_in_rfc_2231_form() -> None:
    # Given an attachment header with a raw UTF-8 file name
    relay, _, _ = _deliver_case(CASES["UTF-8 file name in Content-Disposition"][0])

    # When the stdlib reads what was sent
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(relay.mailer.sent[0].raw)

    # Then the header is ASCII and the file name reads back unchanged
    assert relay.mailer.sent[0].header_block.isascii()
    assert parsed.get_filename() == "r\u00e9sum\u00e9.pdf"


def test_relay_idn_sender_is_masked_in_both_spellings() -> None:
    # Given a sender with an international domain, quoted in Unicode in the subject and the body
    relay, _, _ = _deliver_case(CASES["IDN sender in Unicode"][0])

    # Then neither spelling reaches the service: the relay address stands in for both
    [copy] = relay.mailer.sent
    assert "b\u00fccher".encode() not in copy.raw
    assert b"xn--bcher" not in copy.raw
    assert copy.from_address.encode() in copy.raw.split(b"\r\n\r\n", 1)[1]


def test_relay_mime_nested_1000_levels_is_relayed_with_body_untouched() -> None:
    # Given a message whose text part sits 1000 multipart levels deep and quotes the sender's address
    header = b"Content-Type: multipart/mixed; boundary=\"b0\""
    opening = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n" % (level, level + 1)
                       for level in range(1000))
    text = b"--b1000\r\nContent-Type: text/plain\r\n\r\nJane <" + USER.encode() + b"> wrote\r\n--b1000--\r\n"
    closing = b"".join(b"--b%d--\r\n" % level for level in range(999, -1, -1))
    raw = _message(FROM_USER, TO_SERVICE, b"MIME-Version: 1.0", header, body=opening + text + closing)

    # When it is relayed (invariants checked inside)
    relay, outcomes, _ = _deliver_case(raw)

    # Then it is forwarded, the body as it came (masking stops at its depth limit; its cost is for make bench)
    assert [outcome.reason.value for outcome in outcomes] == ["relayed"]
    assert relay.mailer.sent[0].raw.endswith(opening + text + closing)


@pytest.mark.slow
def test_relay_mail_over_40_mb_goes_as_a_link_and_under_it_intact() -> None:
    # Given a 41 MB and a 39 MB message with a base64 attachment
    attachment = base64.encodebytes(bytes(range(256)) * 4096).replace(b"\n", b"\r\n")  # ~1.4 MB

    def sized(megabytes: int) -> bytes:
        parts = attachment * (megabytes * 1_000_000 // len(attachment))
        return _message(FROM_USER, TO_SERVICE, b"MIME-Version: 1.0",
                        b'Content-Type: multipart/mixed; boundary="b1"',
                        body=b"--b1\r\nContent-Type: text/plain\r\n\r\nplans attached\r\n--b1\r\n"
                             b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                             + parts + b"--b1--\r\n")

    for megabytes, reason in ((41, "oversize"), (39, "relayed")):
        # When each is relayed (invariants checked inside)
        relay, outcomes, raw = _deliver_case(sized(megabytes))

        # Then the large one went as a download link to a byte-exact copy, the other as it came
        assert [outcome.reason.value for outcome in outcomes] == [reason]
        [copy] = [mail for mail in relay.mailer.sent if mail.to_address == OWNER]
        body = raw[raw.index(b"\r\n\r\n") + 4:]
        if reason == "oversize":
            [stored] = [data for key, data in relay.store.objects.items() if key.startswith("copies/")]
            assert stored.endswith(body)
            assert len(copy.raw) < 10_000
        else:
            assert copy.raw.endswith(body)
