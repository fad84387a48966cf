"""Throughput: relayed messages per second with 1, 4 and 16 concurrent senders.

- **Local mode** (``emailflow.local.smtp`` present): the real relay behind local mode's SMTP server, clients
  sending over SMTP, counted once every message sits in the recipients' Maildirs: end to end.
- Otherwise, **in-process**: the real relay handler on in-process moto, called from 1, 4 and 16 threads (what
  local mode's SMTP server will hand it); every message is a first message of a new pair (distinct senders), 3 KB.

Either way one interpreter on this machine does all the work, so the figures are this machine's, emulator included
(a ``cProfile`` of the single-thread run shows how much of it is the relay's own code).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_throughput.py [--messages N] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import smtplib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, environment, merge_results
from benchmarks.support import environment as environment_variables
from benchmarks.support import (
    function_output_discarded,
    message_of_size,
    receipt_event,
    register_service,
    relay_on_moto,
    template_globals_environment,
)

CONCURRENCY = (1, 4, 16)
MESSAGE_BYTES = 3 * 1024


def _run_threads(count: int, messages: int, send: Callable[[int], None]) -> float:
    """``messages`` calls of ``send(number)`` spread over ``count`` threads; wall seconds."""
    numbers = iter(range(messages))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                send(number)
            except BaseException as exc:  # reported after the run
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} sends failed, first: {errors[0]!r}") from errors[0]
    return elapsed


# --- in-process: the handler on moto ----------------------------------------------------------------------------


def _serialise_emulator() -> None:
    """Let one request at a time into moto: its DynamoDB backend is not thread-safe (a transaction deep-copies the
    table while another thread writes to it: "dictionary changed size during iteration"). AWS serves requests in
    parallel; here the handler threads still overlap in everything but the emulator."""
    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]


def in_process(messages: int, profile_top: int) -> dict[str, Any]:
    """Each concurrency level on a fresh emulator: moto's DynamoDB transactions deep-copy the whole table (for
    their rollback), so their cost grows with every item written, and levels must start from the same size."""
    results: dict[str, Any] = {"mode": "in-process handler on in-process moto (local mode not available)"}
    _serialise_emulator()
    for count in CONCURRENCY:
        with _fresh_relay() as (handler, store):
            _run_threads(1, 3, _relaying(handler, store("warm", 3)))
            send = _relaying(handler, store(f"t{count}", messages))
            seconds = _run_threads(count, messages, send)
        results[str(count)] = {"threads": count, "messages": messages, "seconds": seconds,
                               "messages_per_second": messages / seconds}
    with _fresh_relay() as (handler, store):
        _run_threads(1, 3, _relaying(handler, store("warm", 3)))
        results["profile"] = _profile(_relaying(handler, store("profile", messages)), messages, profile_top)
    return results


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Store = Callable[[str, int], list[dict[str, Any]]]


@contextlib.contextmanager
def _fresh_relay() -> Iterator[tuple[Handler, Store]]:
    """The relay handler on a new in-process moto, and a function that stores ``n`` first messages and returns
    their receipt events."""
    import boto3

    from emailflow.config import get_settings

    with environment_variables(template_globals_environment()), relay_on_moto(in_process=True), \
            function_output_discarded():
        from relay.app import handler

        _, address = register_service()
        settings = get_settings()
        s3 = boto3.client("s3")

        def store(label: str, total: int) -> list[dict[str, Any]]:
            events = []
            for number in range(total):
                sender = f"{label}-{number}@real-user.example"
                raw = message_of_size(MESSAGE_BYTES, to=address, sender=sender, seed=number)
                message_id = f"throughput-{label}-{number}"
                s3.put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}", Body=raw)
                events.append(receipt_event(raw, message_id, [address], sender))
            return events

        yield handler, store


def _relaying(handler: Handler, events: list[dict[str, Any]]) -> Callable[[int], None]:
    from emailflow.local.lambda_context import LocalLambdaContext

    def send(number: int) -> None:
        result = handler(events[number], LocalLambdaContext())
        if result["outcomes"][0]["action"] != "forwarded":
            raise RuntimeError(f"not forwarded: {result}")

    return send


def _profile(send: Callable[[int], None], messages: int, top: int) -> dict[str, Any]:
    """cProfile of a single-thread run: the handler's time split into the emulator's (moto, entered through its
    botocore stub) and the relay process's own (our code, botocore, Powertools), and our top functions."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for number in range(messages):
        send(number)
    profiler.disable()
    stats = pstats.Stats(profiler)
    handler_seconds = emulator_seconds = 0.0
    ours: list[tuple[float, str]] = []
    by_package: dict[str, float] = {}
    for (filename, line, function), (_, _, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.endswith("relay/app.py") and function == "handler":
            handler_seconds = cumulative
        if filename.endswith("moto/core/botocore_stubber.py") and function == "__call__":
            emulator_seconds = cumulative
        package = _package_of(filename)
        by_package[package] = by_package.get(package, 0.0) + own
        if package == "emailflow":
            ours.append((cumulative, f"{Path(filename).name}:{line} {function}"))
    ours.sort(reverse=True)
    relay_ms = (handler_seconds - emulator_seconds) / messages * 1e3
    return {"messages": messages, "handler_ms_per_message": handler_seconds / messages * 1e3,
            "emulator_ms_per_message": emulator_seconds / messages * 1e3, "relay_process_ms_per_message": relay_ms,
            "own_seconds_by_package": dict(sorted(by_package.items(), key=lambda item: -item[1])),
            "ours_by_cumulative_ms_per_message": [(name, seconds / messages * 1e3) for seconds, name in ours[:top]]}


def _package_of(filename: str) -> str:
    if "/emailflow/local/" in filename:  # the emulator's seams (moto_ses): emulator time, not the relay's
        return "moto"
    for package in ("emailflow", "relay", "moto", "botocore", "boto3", "aws_lambda_powertools", "werkzeug",
                    "responses", "urllib3", "json", "logging", "email", "re", "xml", "jinja2", "dateutil"):
        if f"/{package}/" in filename or filename.endswith(f"/{package}.py"):
            return "emailflow" if package == "relay" else package
    return "python (other)" if filename.startswith("/") else "builtins"


# --- local mode over SMTP ---------------------------------------------------------------------------------------


def local_mode(messages: int) -> dict[str, Any]:
    """Against local mode (issue 8's ``emailflow.local.server``): SMTP in, Maildirs out, a fresh local relay (and
    so a table of its own) per level, for the reason given in ``in_process``."""
    # As `emailflow local` does: Powertools reads its settings when the package's Metrics is created (at import),
    # and a Metrics without a namespace fails every invocation at its flush (Lambda then retries it).
    with environment_variables(template_globals_environment()):
        return _local_mode_levels(messages)


def _local_mode_levels(messages: int) -> dict[str, Any]:
    import tempfile

    from emailflow.services import register_service as register
    from emailflow.services import service_address

    server = importlib.import_module("emailflow.local.server")  # issue 8: not in every tree yet
    results: dict[str, Any] = {"mode": "local mode over SMTP into Maildirs"}
    for count in CONCURRENCY:
        with tempfile.TemporaryDirectory() as mailbox, function_output_discarded():
            # moto's backends are process-wide: each level gets a stack (and so a table) of its own.
            options = server.LocalOptions(domain="relay.example", brand="emailflow", smtp_port=0,
                                          mailbox=Path(mailbox), stack_name=f"emailflow-bench-{count}")
            with server.LocalRelay(options) as relay:
                ops = relay.operations()
                service = register(ops.directory, ops.codebook, ["owner@holiday-flats.example"], "María García",
                                   relay_domain=ops.settings.domain)
                address = service_address(ops.addressing, service)
                root = Path(mailbox)

                def send(number: int, *, host: str = relay.smtp_host, port: int = relay.smtp_port,
                         label: str = f"t{count}", to: str = address) -> None:
                    source = f"{label}-{number}@real-user.example"
                    raw = message_of_size(MESSAGE_BYTES, to=to, sender=source, seed=number)
                    with smtplib.SMTP(host, port, timeout=60) as client:
                        client.sendmail(source, [to], raw)

                started = time.perf_counter()
                _run_threads(count, messages, send)
                while sum(1 for _ in root.glob("*/new/*")) < messages and time.perf_counter() - started < 300:
                    time.sleep(0.01)
                seconds = time.perf_counter() - started
                delivered = sum(1 for _ in root.glob("*/new/*"))
        results[str(count)] = {"clients": count, "messages": messages, "seconds": seconds, "delivered": delivered,
                               "messages_per_second": delivered / seconds}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=40, help="messages per concurrency level")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    local_available = importlib.util.find_spec("emailflow.local.smtp") is not None
    if local_available:
        try:
            results = local_mode(args.messages)
        except (ImportError, AttributeError, TypeError) as exc:
            print(f"local mode is present but its interface is not the one this benchmark knows ({exc!r}); "
                  "measuring the handler in-process instead")
            local_available = False
    if not local_available:
        print("local mode (emailflow.local.smtp) is not in this tree yet (issue 8): measuring the relay handler "
              "in-process on moto instead, called from threads")
        results = in_process(args.messages, profile_top=12)
    print(f"throughput, {results['mode']}, {MESSAGE_BYTES // 1024} KB messages:")
    for count in CONCURRENCY:
        figures = results[str(count)]
        print(f"  {count:>2} concurrent: {figures['messages_per_second']:6.1f} messages/s "
              f"({figures['messages']} in {figures['seconds']:.2f} s)")
    profile = results.get("profile")
    if profile:
        print(f"  single-thread cProfile ({profile['messages']} messages, profiler overhead included): per message "
              f"{profile['handler_ms_per_message']:.1f} ms in the handler, of which "
              f"{profile['emulator_ms_per_message']:.1f} ms in the emulator and "
              f"{profile['relay_process_ms_per_message']:.1f} ms the relay process's own "
              f"(at most {1e3 / profile['relay_process_ms_per_message']:.0f} messages/s per core without moto)")
        print("  our functions by cumulative time (ms per message):")
        for name, ms in profile["ours_by_cumulative_ms_per_message"]:
            print(f"    {ms:7.2f}  {name}")
    merge_results(args.output, {"throughput": {**results, "message_bytes": MESSAGE_BYTES,
                                               "environment": environment()}})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
