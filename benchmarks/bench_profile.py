"""Where the time of one relayed message goes, from 3 KB to 40 MB, through the real relay handler.

The emulator runs as a moto server in a process of its own, so that the relay's process does only the relay's
work; a fresh child per size is warmed up, then relays first messages of new pairs (distinct senders) one by one.
Stage boundaries come from botocore's own events (``provide-client-params`` when a call starts, ``before-call``
once the request is serialised, ``before-send`` once it is signed and prepared, ``after-call`` once the answer is
parsed) and from wrappers around the S3 read and the outbound bytes:

- **S3 read**: GetObject and reading the body;
- **parse**: splitting the header block, the facts the policy needs;
- **DynamoDB**: every DynamoDB call, end to end (serialise, sign, wire, parse);
- **mask + rewrite**: body masking and the header rewrite (the copy of the body into the outbound message);
- **SESv2 encode**: botocore's serialisation of the request (base64 of the raw message, JSON);
- **SESv2 sign**: building, signing (SHA-256 of the whole payload) and preparing the HTTP request;
- **SESv2 wire**: sending and reading the answer (the emulator's own work lands here);
- **other**: the rest of the handler (decisions, logs, metrics).

**relay CPU** is the relay process's own CPU time per message (``process_time``): what Lambda bills beyond waiting
for S3, DynamoDB and SES, whatever the emulator costs.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_profile.py [--sizes 3KB,1MB] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, environment, merge_results
from benchmarks.support import (
    child_environment,
    last_json_line,
    median,
    message_of_size,
    moto_server,
    receipt_event,
    register_service,
    relay_on_moto,
    run_child,
    template_globals_environment,
)

KIB, MIB = 1024, 1024 * 1024
SIZES: dict[str, tuple[int, int]] = {
    "3KB": (3 * KIB, 25),
    "50KB": (50 * KIB, 25),
    "1MB": (1 * MIB, 15),
    "10MB": (10 * MIB, 7),
    "40MB": (39_900_000, 3),
}
"""Label -> (message size, timed messages). 40 MB is just under the outbound limit, so that it is sent as mail."""
STAGES = ("S3 read", "parse", "DynamoDB", "mask + rewrite", "SESv2 encode", "SESv2 sign", "SESv2 wire", "other")


class Timeline:
    """Stage durations of the handler call in progress, from botocore events and wrappers."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.dynamodb_calls = 0
        self._started: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the previous call's figures."""
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.dynamodb_calls = 0
        self._started.clear()

    def start(self, key: str) -> None:
        self._started[key] = time.perf_counter()

    def stop(self, key: str, stage: str) -> None:
        started = self._started.pop(key, None)
        if started is not None:
            self.totals[stage] += time.perf_counter() - started

    def lap(self, key: str, stage: str) -> None:
        """Close ``stage`` at this instant and start timing ``key`` from here."""
        self.stop(key, stage)
        self.start(key)


def _instrument(timeline: Timeline) -> None:
    from emailflow import relay, wiring
    from emailflow.adapters.clients import dynamodb_client, sesv2_client
    from emailflow.ports import MailBytes

    context = wiring.relay_context()
    store = context.mail_store
    original_get = store.get_raw

    def get_raw(key: str) -> bytes:
        timeline.start("s3")
        raw = original_get(key)
        timeline.stop("s3", "S3 read")
        timeline.start("parse")
        return raw

    store.get_raw = get_raw  # type: ignore[method-assign]
    original_read = relay._read

    def read(*args: Any) -> Any:
        inbound = original_read(*args)
        timeline.stop("parse", "parse")
        return inbound

    relay._read = read  # type: ignore[assignment]
    original_outbound = relay._outbound

    def outbound(inbound: Any, plan: Any) -> MailBytes:
        timeline.start("rewrite")
        rewritten = original_outbound(inbound, plan)
        timeline.stop("rewrite", "mask + rewrite")
        return rewritten

    relay._outbound = outbound

    def dynamodb_start(**_: Any) -> None:
        timeline.dynamodb_calls += 1
        timeline.start("dynamodb")

    dynamo_events = dynamodb_client().meta.events
    dynamo_events.register("provide-client-params.dynamodb.*", dynamodb_start)
    dynamo_events.register("after-call.dynamodb.*", lambda **_: timeline.stop("dynamodb", "DynamoDB"))
    ses_events = sesv2_client().meta.events
    ses_events.register("provide-client-params.sesv2.SendEmail", lambda **_: timeline.start("ses"))
    ses_events.register("before-call.sesv2.SendEmail", lambda **_: timeline.lap("ses", "SESv2 encode"))
    ses_events.register("before-send.sesv2.SendEmail", lambda **_: timeline.lap("ses", "SESv2 sign"))
    ses_events.register("after-call.sesv2.SendEmail", lambda **_: timeline.stop("ses", "SESv2 wire"))


def _child(events_path: Path) -> dict[str, Any]:
    import gc

    from emailflow.local.lambda_context import LocalLambdaContext
    from relay.app import handler

    document = json.loads(events_path.read_text(encoding="utf-8"))
    warm = handler(document["warm"], LocalLambdaContext())
    assert warm["outcomes"][0]["action"] == "forwarded", warm
    runs: list[dict[str, float]] = []
    timeline = Timeline()
    _instrument(timeline)
    for event in document["timed"]:
        timeline.reset()
        gc.collect()
        cpu_started, started = time.process_time(), time.perf_counter()
        result = handler(event, LocalLambdaContext())
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert result["outcomes"][0]["action"] == "forwarded", result
        timeline.totals["other"] = total - sum(timeline.totals.values())
        runs.append({"total": total * 1e3, "cpu": cpu * 1e3,
                     **{stage: seconds * 1e3 for stage, seconds in timeline.totals.items()},
                     "dynamodb_calls": timeline.dynamodb_calls})
    return {"size": document["size"], "runs": runs}


def _prepare(size: int, count: int, directory: Path, label: str) -> Path:
    import boto3

    from emailflow.config import get_settings

    _, address = register_service(f"Service {label}")
    settings = get_settings()
    s3 = boto3.client("s3")
    document: dict[str, Any] = {"timed": []}
    for number in range(count + 1):
        sender = f"{label.lower()}-{number}@real-user.example"
        raw = message_of_size(3 * KIB if number == 0 else size, to=address, sender=sender, seed=number)
        message_id = f"profile-{label}-{number}"
        s3.put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}", Body=raw)
        event = receipt_event(raw[:4096], message_id, [address], sender)
        if number == 0:
            document["warm"] = event
        else:
            document["timed"].append(event)
            document["size"] = len(raw)
    path = directory / f"profile-{label}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated subset of {', '.join(SIZES)}")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0

    import tempfile

    labels = [label for label in args.sizes.split(",") if label]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        for label in labels:
            # A new emulator per size: moto's DynamoDB transactions copy the whole table, so a table that grew
            # with the previous sizes would slow this one down.
            with moto_server() as endpoint:
                os.environ["AWS_ENDPOINT_URL"] = endpoint
                try:
                    with relay_on_moto(in_process=False) as stack:
                        path = _prepare(SIZES[label][0], SIZES[label][1], Path(work), label)
                        function_env = stack.function_environment("RelayFunction")
                finally:
                    os.environ.pop("AWS_ENDPOINT_URL", None)
                env = child_environment({**template_globals_environment(), **function_env,
                                         "AWS_ENDPOINT_URL": endpoint})
                results[label] = last_json_line(run_child([__file__, "--child", str(path)], env))

    print("where the time of one relayed message goes (median ms per stage; first message of a new pair each;")
    print("moto server in its own process, so 'SESv2 wire' and 'DynamoDB' include the emulator's work)")
    header = f"{'size':>6} {'total':>8} {'relay CPU':>9} " + " ".join(f"{stage:>14}" for stage in STAGES)
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for label in labels:
        runs = results[label]["runs"]
        medians = {key: median([run[key] for run in runs]) for key in ("total", "cpu", *STAGES)}
        summary[label] = {"size_bytes": results[label]["size"], "messages": len(runs), "median_ms": medians,
                          "dynamodb_calls": runs[0]["dynamodb_calls"]}
        print(f"{label:>6} {medians['total']:8.1f} {medians['cpu']:9.1f} "
              + " ".join(f"{medians[stage]:14.2f}" for stage in STAGES))
    merge_results(args.output, {"relay_profile": {"stages": list(STAGES), "sizes": summary,
                                                  "environment": environment()}})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
