"""Memory: the peak of relaying one ~40 MB message end to end through the real relay handler, above the idle
baseline, as a multiple of the message size.

The emulator runs as a moto server in a process of its own, so that what is measured is the relay's process
alone, as on Lambda: the S3 read over HTTP, the rewrite, botocore's encoding of the SESv2 request (base64 and
JSON), the signature, the send and the DynamoDB calls. Two fresh children, each warmed up with one small message
first (clients, models, caches), relay the same stored message:

- ``tracemalloc``: the peak of Python allocations made during the call (the idle baseline is what was allocated
  before it), and the peak within each stage (S3 read, rewrite, SESv2 encoding, signing and sending, close);
- ``rss``: the process's peak resident set (``VmHWM``, reset just before the call) above its resident set when
  idle: what Lambda's memory limit sees, allocator behaviour included.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_memory.py [--size BYTES] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, environment, merge_results
from benchmarks.support import (
    USER,
    child_environment,
    last_json_line,
    message_of_size,
    moto_server,
    receipt_event,
    register_service,
    relay_on_moto,
    run_child,
    template_globals_environment,
)

TARGET_PEAK_OVER_SIZE = 5.0
"""Peak above the idle baseline, as a multiple of the message size (issue 11)."""
DEFAULT_SIZE = 39_900_000
"""Just under SES's 40 MB sending limit once rewritten (``relay.MAX_OUTBOUND_BYTES`` is 40,000,000): the largest
message the relay sends as mail rather than as a download link."""
MIB = 1024 * 1024
MODES = ("tracemalloc", "rss")


def _statm_rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak resident set (``VmHWM``).

    Not ``ru_maxrss``: Linux carries a process's ``ru_maxrss`` over an ``exec``, so a child started by a parent that
    once held a 40 MB message reports the parent's peak. ``VmHWM`` belongs to the process's own address space."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    """Start ``VmHWM`` again from the current resident set (``clear_refs``, Linux 4.0+), when allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass


class StageMeter:
    """tracemalloc peaks between named points of one handler call (each point resets the peak)."""

    def __init__(self) -> None:
        import tracemalloc

        self._tracemalloc = tracemalloc
        self.stages: list[dict[str, Any]] = []
        self._base = 0

    def start(self) -> None:
        self._tracemalloc.start()
        self._base = self._tracemalloc.get_traced_memory()[0]
        self._tracemalloc.reset_peak()

    def mark(self, label: str) -> None:
        current, peak = self._tracemalloc.get_traced_memory()
        self.stages.append({"until": label, "peak_bytes": peak - self._base, "live_bytes": current - self._base})
        self._tracemalloc.reset_peak()

    def stop(self) -> None:
        self._tracemalloc.stop()


class RssMeter:
    """The process's resident set at the same points: its high-water mark so far and its current size."""

    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []
        self._base = 0

    def start(self) -> None:
        self._base = _statm_rss_bytes()

    def mark(self, label: str) -> None:
        high = _peak_rss_bytes()
        self.stages.append({"until": label, "peak_bytes": high - self._base,
                            "live_bytes": _statm_rss_bytes() - self._base})


def _instrument(meter: StageMeter | RssMeter) -> None:
    """Marks at the stage boundaries of the relay path: after the S3 read, after the outbound bytes are built,
    when botocore has serialised the SESv2 request, when it has signed and prepared it, when SES answered."""
    from emailflow import relay, wiring
    from emailflow.ports import MailBytes

    context = wiring.relay_context()
    store = context.mail_store
    original_get = store.get_raw

    def get_raw(key: str) -> bytes:
        raw = original_get(key)
        meter.mark("S3 read")
        return raw

    store.get_raw = get_raw  # type: ignore[method-assign]
    original_outbound = relay._outbound

    def outbound(inbound: Any, plan: Any) -> MailBytes:
        meter.mark("parse, DynamoDB read, claim")
        rewritten = original_outbound(inbound, plan)
        meter.mark("mask and rewrite")
        return rewritten

    relay._outbound = outbound
    from emailflow.adapters.clients import sesv2_client

    events = sesv2_client().meta.events
    events.register("before-call.sesv2.SendEmail", lambda **_: meter.mark("SESv2 request serialised"))
    events.register("before-send.sesv2.SendEmail", lambda **_: meter.mark("SESv2 request signed and prepared"))
    events.register("after-call.sesv2.SendEmail", lambda **_: meter.mark("SESv2 sent, response read"))


def _child(mode: str, events_path: Path) -> dict[str, Any]:
    """In a fresh interpreter whose environment points at the moto server: warm up, then relay the big message."""
    import gc

    from emailflow.local.lambda_context import LocalLambdaContext
    from relay.app import handler

    events = json.loads(events_path.read_text(encoding="utf-8"))
    size = events.pop("size")
    warm = handler(events["warm"], LocalLambdaContext())
    assert warm["outcomes"][0]["action"] == "forwarded", warm
    gc.collect()
    if mode == "rss":
        rss = RssMeter()
        _instrument(rss)
        _reset_peak_rss()
        idle = _statm_rss_bytes()
        high_before = _peak_rss_bytes()
        rss.start()
        result = handler(events["big"], LocalLambdaContext())
        rss.mark("close, metrics, logs")
        high_after = _peak_rss_bytes()
        assert result["outcomes"][0]["action"] == "forwarded", result
        return {"size": size, "idle_rss_bytes": idle, "max_rss_before_bytes": high_before,
                "max_rss_after_bytes": high_after, "peak_above_idle_bytes": high_after - idle, "stages": rss.stages}
    meter = StageMeter()
    _instrument(meter)
    meter.start()
    result = handler(events["big"], LocalLambdaContext())
    meter.mark("close, metrics, logs")
    meter.stop()
    assert result["outcomes"][0]["action"] == "forwarded", result
    peak = max(stage["peak_bytes"] for stage in meter.stages)
    return {"size": size, "peak_above_idle_bytes": peak, "stages": meter.stages}


def _prepare(size: int, events_path: Path, quote_sender: bool) -> None:
    """Register a service, store a small and a big message in the emulator's bucket, write their events."""
    import boto3

    from emailflow.config import get_settings

    _, address = register_service()
    settings = get_settings()
    s3 = boto3.client("s3")
    for mode in MODES:
        events: dict[str, Any] = {"size": 0}
        for name, wanted, sender in (("warm", 3 * 1024, f"warm-up-{mode}@real-user.example"), ("big", size, USER)):
            raw = message_of_size(wanted, to=address, sender=sender, quote_sender=quote_sender and name == "big")
            message_id = f"memory-{mode}-{name}"
            s3.put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}", Body=raw)
            events[name] = receipt_event(raw[:4096], message_id, [address], sender)
            if name == "big":
                events["size"] = len(raw)
            del raw
        (events_path / f"{mode}.json").write_text(json.dumps(events), encoding="utf-8")


def measure(size: int, quote_sender: bool, work: Path) -> dict[str, Any]:
    events_path = work
    results: dict[str, Any] = {}
    with moto_server() as endpoint:
        endpoint_env = {"AWS_ENDPOINT_URL": endpoint}
        os.environ.update(endpoint_env)
        try:
            with relay_on_moto(in_process=False) as stack:
                _prepare(size, events_path, quote_sender)
                function_env = stack.function_environment("RelayFunction")
        finally:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        env = child_environment({**template_globals_environment(), **function_env, **endpoint_env})
        for mode in MODES:
            results[mode] = last_json_line(run_child([__file__, "--child", mode, "--events",
                                                      str(events_path / f"{mode}.json")], env))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="message size in bytes")
    parser.add_argument("--quote-sender", action="store_true", help="the text part quotes the sender (masking)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.events)))
        return 0

    import tempfile

    with tempfile.TemporaryDirectory() as work:
        results = measure(args.size, args.quote_sender, Path(work))
    traced, rss = results["tracemalloc"], results["rss"]
    size = traced["size"]
    print(f"memory: one {size / MIB:.1f} MiB message through the relay handler (moto server in its own process)")
    print("  above the idle baseline, x message size: tracemalloc peak within each stage (allocated at its end);")
    print("  max RSS so far at its end (resident then)")
    for traced_stage, rss_stage in zip(traced["stages"], rss["stages"], strict=True):
        print(f"    {traced_stage['peak_bytes'] / size:5.2f}x ({traced_stage['live_bytes'] / size:4.2f}x)  "
              f"RSS {rss_stage['peak_bytes'] / size:5.2f}x ({rss_stage['live_bytes'] / size:4.2f}x)  "
              f"until: {traced_stage['until']}")
    traced_ratio = traced["peak_above_idle_bytes"] / size
    rss_ratio = rss["peak_above_idle_bytes"] / size
    print(f"  tracemalloc: peak {traced['peak_above_idle_bytes'] / MIB:6.1f} MiB above idle = {traced_ratio:.2f}x")
    print(f"  max RSS:     {rss['max_rss_after_bytes'] / MIB:6.1f} MiB, idle {rss['idle_rss_bytes'] / MIB:.1f} MiB: "
          f"peak {rss['peak_above_idle_bytes'] / MIB:6.1f} MiB above idle = {rss_ratio:.2f}x")
    targets = {
        "tracemalloc_peak_over_size": {"value": traced_ratio, "target": f"<= {TARGET_PEAK_OVER_SIZE:g}",
                                       "pass": traced_ratio <= TARGET_PEAK_OVER_SIZE},
        "rss_peak_over_size": {"value": rss_ratio, "target": f"<= {TARGET_PEAK_OVER_SIZE:g}",
                               "pass": rss_ratio <= TARGET_PEAK_OVER_SIZE},
    }
    for name, target in targets.items():
        print(f"{'PASS' if target['pass'] else 'FAIL'}  {name} = {target['value']:.2f} (target {target['target']})")
    key = "memory_quoted_sender" if args.quote_sender else "memory"
    merge_results(args.output, {key: {"size_bytes": size, "tracemalloc": traced, "rss": rss, "targets": targets,
                                      "environment": environment()}})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
