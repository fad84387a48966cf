"""``make demo``: local mode, a registered service and a conversation (phases 0-4) sent over SMTP, each hop read
back from the recipients' Maildirs and printed. No AWS account, no network beyond this machine's loopback.

Phases: (0) a user writes to a service's public relay address; (1) the service receives it From a user code;
(2) the service replies to that code; (3) the user receives it From the service code; (4) the user answers again
and the same codes are reused. Every message goes through the SMTP server of ``emailflow local``, the real relay
handler and the emulated SES, as ``emailflow local`` runs them.
"""

from __future__ import annotations

import email
import email.policy
import io
import smtplib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any

DOMAIN = "relay.example"
BRAND = "emailflow"
USER = ("Jane Doe", "jane.doe@real-user.example")
OWNER = ("María García", "owner@holiday-flats.example")
_LABEL = 13


def _compose(sender: tuple[str, str], to: str, subject: str, body: str, in_reply_to: str | None = None,
             references: str | None = None) -> tuple[bytes, str]:
    # No folding: the stdlib folds a long unbreakable header (an SES Message-ID in In-Reply-To) by RFC 2047-encoding
    # it, which no mail client does and which hides the id from threading.
    message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
    message["From"] = formataddr(sender)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message_id = make_msgid(domain=sender[1].rpartition("@")[2])
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = references or in_reply_to
    message["X-Mailer"] = "DemoMail 1.0"
    message.set_content(body)
    return message.as_bytes(), message_id


def _body(raw: bytes) -> bytes:
    return raw[raw.index(b"\r\n\r\n") + 4 :]


def _line(label: str, value: object) -> None:
    print(f"      {label + ':':<{_LABEL}} {value}")


@dataclass
class Transcript:
    """Sends over SMTP, reads back from the Maildirs, prints each hop and remembers whether all checks passed."""

    host: str
    port: int
    mailbox: Path
    failures: list[str] = field(default_factory=list)

    def send(self, number: int, sender: tuple[str, str], to: str, raw: bytes) -> None:
        print(f"[{number}] {sender[1]} writes to {to}")
        with smtplib.SMTP(self.host, self.port, timeout=60) as client:
            client.ehlo("demo.example")
            client.mail(sender[1])
            client.rcpt(to)
            code, reply = client.data(raw)
        _line("SMTP", f"{self.host}:{self.port} answered {code} {reply.decode()}")

    def receive(self, label: str, recipient: str, original: bytes, hidden: str) -> Any:
        from emailflow.local.delivery import maildir_name, read_maildir

        delivered = read_maildir(self.mailbox, recipient)
        if not delivered:
            self.failures.append(f"nothing delivered to {recipient}")
            print(f"{label} {recipient}: NOTHING DELIVERED (bug!)")
            return None
        raw = delivered[-1]
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        print(f"{label} {recipient} finds in {Path(self.mailbox.name) / maildir_name(recipient)}/new/:")
        for name in ("From", "To", "Reply-To", "Subject", "Message-ID", "In-Reply-To"):
            if parsed[name]:
                _line(name, parsed[name])
        same = _body(raw) == _body(original)
        _line("body", f"{len(_body(raw))} bytes, {'identical to what was sent' if same else 'CHANGED (bug!)'}")
        leaked = hidden.lower().encode() in raw.lower()
        _line("leak check", f"the sender's real address {'FOUND (bug!)' if leaked else 'appears nowhere'}")
        if not same or leaked:
            self.failures.append(f"{label}: body changed or address leaked")
        return parsed

    def check(self, label: str, ok: bool, detail: str) -> None:
        _line(label, f"{'yes' if ok else 'NO (bug!)'}, {detail}")
        if not ok:
            self.failures.append(label)


def _bounce(demo: Transcript, ops: Any, mailbox: Path) -> None:
    """A service whose mailbox is gone (SES's bounce simulator): the user is told, From the address they wrote to."""
    from emailflow.local.delivery import read_maildir
    from emailflow.services import register_service, service_address

    gone = register_service(ops.directory, ops.codebook, ["bounce@simulator.amazonses.com"], "Closed Cottage",
                            relay_domain=ops.settings.domain)
    address = service_address(ops.addressing, gone)
    print(f"\nOperator registers a service whose mailbox no longer exists (SES's bounce simulator): {address}")
    before = len(read_maildir(mailbox, USER[1]))
    raw, _ = _compose(USER, address, "Still available?", "Hello, is the cottage still available?\n")
    demo.send(5, USER, address, raw)
    notices = read_maildir(mailbox, USER[1])[before:]
    if not notices:
        demo.failures.append("no bounce notice")
        print("      bounce notice: NONE (bug!)")
        return
    notice = email.message_from_bytes(notices[-1], policy=email.policy.default)
    print(f"[6] SES reports a permanent bounce; the bounces function tells {USER[1]}:")
    for name in ("From", "Subject", "Auto-Submitted"):
        _line(name, notice[name])
    demo.check("no leak", b"simulator.amazonses.com" not in notices[-1], "the dead address is not revealed")


def main() -> int:
    from emailflow.config import set_process_environment

    quiet = {"POWERTOOLS_SERVICE_NAME": "emailflow", "POWERTOOLS_METRICS_NAMESPACE": "emailflow",
             "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    restore = set_process_environment(quiet, keep_existing=["POWERTOOLS_LOG_LEVEL"])
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="emailflow-demo-") as directory:
            return _run(Path(directory) / "mailbox", started)
    finally:
        restore()


def _run(mailbox: Path, started: float) -> int:
    # Imported here: the package's logger reads the Powertools settings ``main`` set when it is created.
    from emailflow.local.server import LocalOptions, LocalRelay
    from emailflow.services import register_service, service_address
    from emailflow.stats import service_stats

    options = LocalOptions(domain=DOMAIN, brand=BRAND, smtp_port=0, mailbox=mailbox, log_stream=io.StringIO())
    with LocalRelay(options) as relay:
        print(f"emailflow demo: local mode ({DOMAIN}), the real relay handler behind a real SMTP server")
        print(f"  AWS emulator (moto) at {relay.endpoint_url}, created from template.yaml: "
              f"{', '.join(relay.stack.created)}")
        print(f"  SMTP (plays SES inbound) at {relay.smtp_host}:{relay.smtp_port}; "
              f"mail the relay sends lands in {mailbox}/<recipient>/ (Maildir)\n")
        ops = relay.operations()
        service = register_service(ops.directory, ops.codebook, [OWNER[1]], OWNER[0], {"listing": "flat-4711"},
                                   relay_domain=ops.settings.domain)
        public = service_address(ops.addressing, service)
        print(f'Operator: emailflow service add {OWNER[1]} --name "{OWNER[0]}" --context listing=flat-4711')
        print(f"  -> {public}   (the web form shows this address)\n")
        demo = Transcript(relay.smtp_host, relay.smtp_port, mailbox)

        first, first_id = _compose(USER, public, "Is the flat free in July?",
                                   "Hello,\n\nis the flat free from 3 to 17 July? Two adults and a dog.\n\nJane\n")
        demo.send(0, USER, public, first)
        got = demo.receive("[1]", OWNER[1], first, USER[1])
        if got is None:
            return 1
        user_code_address = got["Reply-To"].addresses[0].addr_spec

        reply, reply_id = _compose(OWNER, user_code_address, "Re: Is the flat free in July?",
                                   "Hello Jane,\n\nyes, it is free. Dogs are welcome.\n\nMaría\n",
                                   in_reply_to=got["Message-ID"])
        print()
        demo.send(2, OWNER, user_code_address, reply)
        got = demo.receive("[3]", USER[1], reply, OWNER[1])
        if got is None:
            return 1
        demo.check("threads", got["In-Reply-To"] == first_id, "In-Reply-To is Jane's own first message")

        again, _ = _compose(USER, public, "Re: Is the flat free in July?",
                            "Wonderful, we take it. How do we pay?\n\nJane\n", in_reply_to=got["Message-ID"])
        print()
        demo.send(4, USER, public, again)
        got = demo.receive("   ", OWNER[1], again, USER[1])
        if got is None:
            return 1
        demo.check("same code", got["Reply-To"].addresses[0].addr_spec == user_code_address, user_code_address)
        demo.check("threads", got["In-Reply-To"] == reply_id, "In-Reply-To is María's own reply")

        _bounce(demo, ops, mailbox)

        [pair] = ops.directory.list_pairs(service.code)
        print(f"\nConversation {USER[1][:1]}*** x {OWNER[0]}: {pair.user_messages} user messages, "
              f"{pair.service_messages} service message(s), replied: {'yes' if pair.first_reply_at else 'no'}, "
              f"awaiting reply: {'yes' if pair.awaiting_reply_since else 'no'}")
        figures = service_stats(service.code, ops.directory.list_pairs(service.code), int(time.time()))
        print(f"emailflow stats {public.split('@')[0]}: conversations {figures.conversations}, reply rate "
              f"{figures.reply_rate:.0%}, first response (median) {figures.first_response_median} s")
    print(f"local mode stopped; demo finished in {time.monotonic() - started:.1f} s:",
          "OK" if not demo.failures else f"FAILED ({'; '.join(demo.failures)})")
    return 0 if not demo.failures else 1


if __name__ == "__main__":
    sys.exit(main())
