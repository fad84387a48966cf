"""Fuzz target: arbitrary bytes as an inbound message, through the whole relay on the in-memory fakes.

Every input is delivered to a service (first byte even) or, within a started conversation, to a user (odd), and
must keep every invariant of ``tests.support.hostile.check_relay``: no exception, an outcome with a reason, the
body untouched but for the documented masking, no hidden address in the header block or envelope, and a valid
ASCII header block.

Two ways to run it (docs/operations.md, "Fuzzing the relay"):

    make fuzz FUZZ_SECONDS=300                  # plain loop: mutated fixtures and random bytes, no extra package
    python tests/fuzz/fuzz_relay.py --atheris   # coverage-guided, when atheris is installed (pip install atheris)

The plain loop is seeded (``--seed``) and writes the first input that breaks an invariant to ``--crash-dir``, then
exits 1; replay one with ``--replay FILE``. The literal ``service-placeholder@relay.example`` (and
``user-placeholder@relay.example``) in an input is replaced by the real relay address of the run.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT, ROOT / "functions"):  # run as a script from anywhere
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from emailflow.outcomes import RelayOutcome  # noqa: E402
from emailflow.relay import relay_inbound  # noqa: E402
from emailflow.services import register_service, service_address  # noqa: E402
from tests.support.fakes import (  # noqa: E402
    DictMailStore,
    FakeClock,
    InMemoryDirectory,
    RecordingMailer,
    inbound_mail,
    make_context,
)
from tests.support.hostile import SENDERS, Sent, check_relay, sender_of  # noqa: E402
from tests.support.mail import FIXTURES, load_eml  # noqa: E402

OWNER = "owner@holiday-flats.example"
USER = "jane.doe@real-user.example"
SERVICE_PLACEHOLDER = b"service-placeholder@relay.example"
USER_PLACEHOLDER = b"user-placeholder@relay.example"


def test_one_input(data: bytes) -> None:
    """Relay ``data`` once; raise (an ``InvariantBroken`` or whatever the relay raised) when anything is wrong."""
    selector, raw = (data[0], data[1:]) if data else (0, b"")
    clock = FakeClock()
    directory, mailer, store = InMemoryDirectory(clock), RecordingMailer(), DictMailStore()
    context = make_context(directory=directory, mailer=mailer, mail_store=store, clock=clock)
    service = register_service(directory, context.codebook, [OWNER], "Flat", clock=clock)
    address = service_address(context.addressing, service)
    sender = SENDERS[(selector >> 1) % len(SENDERS)]
    if selector % 2 == 0:
        recipient, relayed_to, hidden = address, OWNER, [sender]
    else:  # a started conversation, then the input from the service to the user
        _deliver(store, context, load_eml("user_first_message.eml", {
            "service-placeholder@relay.example": address}), address, USER)
        recipient, relayed_to, hidden, sender = mailer.sent[-1].from_address, USER, [OWNER], OWNER
    raw = raw.replace(SERVICE_PLACEHOLDER, address.encode()).replace(USER_PLACEHOLDER, recipient.encode())
    # The From address is what the relay hides (and SES's envelope sender is the From address in all but forwarded
    # mail): the one the relay reads, when there is one
    hidden = [*hidden, *sender_of(raw)] if selector % 2 else sender_of(raw)
    sender = sender_of(raw)[0] if selector % 2 == 0 and sender_of(raw) else sender
    before = len(mailer.sent)
    outcomes = _deliver(store, context, raw, recipient, sender)
    sent = [Sent(mail.raw, mail.from_address, mail.to_address) for mail in mailer.sent[before:]]
    check_relay(raw, [recipient], outcomes, sent, relayed_to=relayed_to, hidden=hidden)


def _deliver(store: DictMailStore, context: object, raw: bytes, recipient: str, sender: str) -> list[RelayOutcome]:
    message_id = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
    store.put(message_id, raw)
    return relay_inbound(inbound_mail(message_id, [recipient], sender), context)  # type: ignore[arg-type]


# -- the plain loop ---------------------------------------------------------------------------------------------

_TOKENS = [b"\r\n", b"\n", b"\r", b"\x00", b"\r\n ", b'"', b"<", b">", b",", b";", b":", b"@", b"=?utf-8?b?",
           b"=?utf-8?q?", b"?=", b"=0D=0A", b"\xff", b"\xc3", b"\xe9", b"From: ", b"To: ", b"Subject: ",
           b"Reply-To: ", b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n", b"--b--",
           SERVICE_PLACEHOLDER, USER_PLACEHOLDER, USER.encode(), OWNER.encode(), b"x" * 1000]


def seeds() -> list[bytes]:
    """The fixture messages, addressed to the placeholder of this target."""
    return [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    """A seed with a few random edits, or random bytes (1 in 10)."""
    if rng.random() < 0.1:
        return rng.randbytes(rng.randrange(1, 400))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randrange(1, 8)):
        position = rng.randrange(len(data) + 1)
        choice = rng.random()
        if choice < 0.4:
            data[position:position] = rng.choice(_TOKENS)
        elif choice < 0.6 and data:
            del data[position : position + rng.randrange(1, 40)]
        elif choice < 0.8 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        else:
            other = rng.choice(corpus)
            start = rng.randrange(len(other))
            data[position:position] = other[start : start + rng.randrange(1, 200)]
    return bytes([rng.randrange(256)]) + bytes(data)


def run_for(seconds: float, seed: int, crash_dir: Path | None = None) -> int:
    """Fuzz for ``seconds``; returns the number of inputs tried. Raises on the first broken invariant (after
    writing the input to ``crash_dir``)."""
    rng = random.Random(seed)
    corpus = seeds()
    deadline = time.monotonic() + seconds
    tried = 0
    while time.monotonic() < deadline:
        data = mutate(rng, corpus)
        try:
            test_one_input(data)
        except Exception:
            if crash_dir is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                path = crash_dir / f"crash-{hashlib.sha1(data, usedforsecurity=False).hexdigest()}"
                path.write_bytes(data)
                print(f"invariant broken; input written to {path}", file=sys.stderr)
            raise
        tried += 1
    return tried


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"))
    parser.add_argument("--replay", type=Path, help="run one saved input and report")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris")
    args, rest = parser.parse_known_args(argv)
    if args.replay:
        test_one_input(args.replay.read_bytes())
        print("no invariant broken")
        return 0
    if args.atheris:
        import atheris

        atheris.Setup([sys.argv[0], *rest], test_one_input)
        atheris.Fuzz()
        return 0
    tried = run_for(args.seconds, args.seed, args.crash_dir)
    print(f"fuzz_relay: {tried} inputs in {args.seconds:g} s (seed {args.seed}), no invariant broken")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
