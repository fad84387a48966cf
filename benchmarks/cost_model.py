"""Dollars per 100,000 relayed messages, from the figures the other benchmarks measured and the public price list.

Reads ``benchmarks/results.json`` (the relay's CPU time per message by size from ``bench_profile``, the full parse
from ``bench_rewrite``, cold start from ``bench_coldstart``), combines them with the call and capacity-unit counts of
docs/store.md and the prices below (us-east-1, as listed on the dates given), and prints the model docs/cost.md
explains: emailflow at 512 MB (the recommendation), at 1024 MB (the template's setting), and a naive forwarder that
parses and re-serialises every message with the stdlib, for comparison. What was not measured here (AWS's own
latencies: no account on this machine) is an assumption, named as such, with its effect shown.

Run: ``make bench`` (last) or ``.venv/bin/python benchmarks/cost_model.py [--output PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, merge_results

MESSAGES = 100_000
KB, MB, GB = 1024, 1024**2, 1024**3

# --- prices, us-east-1 (USD) ---------------------------------------------------------------------------------------
PRICES: dict[str, tuple[float, str]] = {
    "lambda_gb_second_arm64": (0.0000133334, "https://aws.amazon.com/lambda/pricing/ (first 7.5 billion GB-s/month)"),
    "lambda_request": (0.20 / 1e6, "https://aws.amazon.com/lambda/pricing/"),
    "dynamodb_write_request_unit": (0.625 / 1e6, "https://aws.amazon.com/dynamodb/pricing/on-demand/ (since "
                                    "2024-11-01)"),
    "dynamodb_read_request_unit": (0.125 / 1e6, "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_storage_gb_month": (0.25, "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "s3_put": (0.005 / 1000, "https://aws.amazon.com/s3/pricing/ (S3 Standard)"),
    "s3_get": (0.0004 / 1000, "https://aws.amazon.com/s3/pricing/"),
    "s3_storage_gb_month": (0.023, "https://aws.amazon.com/s3/pricing/ (first 50 TB)"),
    "ses_inbound_message": (0.10 / 1000, "AWS Price List API, AmazonSES us-east-1, 2026-07-22 (a la carte)"),
    "ses_inbound_chunk_256kb": (0.09 / 1000, "AWS Price List API, AmazonSES us-east-1, 2026-07-22"),
    "ses_outbound_a_la_carte": (0.10 / 1000, "AWS Price List API, AmazonSES us-east-1, 2026-07-22"),
    "ses_outbound_essentials": (0.16 / 1000, "AWS Price List API, AmazonSES us-east-1, 2026-07-22 (Essentials "
                                "plan, first 10M; the default plan of accounts new since 2026-07-21)"),
    "ses_attachments_gb": (0.12, "AWS Price List API, AmazonSES us-east-1, 2026-07-22"),
    "sns_publish": (0.50 / 1e6, "https://aws.amazon.com/sns/pricing/ (delivery to Lambda: no charge)"),
    "cloudwatch_logs_ingest_gb": (0.50, "https://aws.amazon.com/cloudwatch/pricing/"),
    "cloudwatch_custom_metric_month": (0.30, "https://aws.amazon.com/cloudwatch/pricing/ (first 10,000)"),
}

# --- what was not measured: assumptions ------------------------------------------------------------------------
SIZE_MIX: dict[str, float] = {"3KB": 0.60, "50KB": 0.30, "1MB": 0.09, "10MB": 0.01}
"""Share of messages by size: mostly short text, some photos and PDFs, a few large files (assumption)."""
SIZES = {"3KB": 3 * KB, "50KB": 50 * KB, "1MB": 1 * MB, "10MB": 10 * MB, "40MB": 39_900_000}
PATH_MIX: dict[str, float] = {"phase 0": 0.30, "phase 2": 0.35, "phase 4": 0.35}
"""Share of relayed messages by path: a conversation of ~3 messages (assumption)."""
IO = {"s3_first_byte_ms": 20.0, "dynamodb_call_ms": 6.0, "ses_send_ms": 60.0, "network_mb_per_s": 80.0}
"""AWS latencies seen from Lambda in the same region, warm connections (assumption: not measurable here)."""
COLD_START_SHARE = 0.01
"""Invocations that start a new execution environment (assumption; a steady trickle of mail keeps ~1 %)."""
CPU_VCPU_MB = 1769
"""Lambda's CPU is proportional to memory; at 1,769 MB a function has one vCPU
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html)."""
LOG_BYTES = {"relay": 1000 + 350, "bounces": 700 + 350}
"""Bytes of CloudWatch Logs per invocation: what the handlers print for one message (measured: relay 680-1050,
bounces 240-740) plus Lambda's START/END/REPORT lines (~350, assumption)."""
METRIC_SERIES = 30
"""Custom metric series the handlers emit (observability.METRIC_DIMENSIONS, with a handful of values each)."""
RAW_MAIL_DAYS = 30
"""template.yaml's RawMailRetentionDays default: raw mail stays in S3 this long."""

# DynamoDB capacity units per message by path (docs/store.md): every item of the relay is under 1 KB and under 4 KB
# to read; a strongly consistent read costs one unit per key, found or not; a write in a transaction costs two. A
# reply or follow-up usually refers to one earlier message: one thread-record key more in its read.
#   phase 0: read service, pair, delivery, rate (4); transaction pair + alias + claim + the sender budget's
#            conditional ADD (8); close of 5 items (10).  before: the budget an UpdateItem of its own (1), 6, 10
#   phase 4: read the same + 1 thread record (5); transaction claim + sender budget (4); close (10).  before: the
#            budget (1), the claim a PutItem (1), 10
#   phase 2, before: alias + delivery + 1 thread record (3), then service + pair + rate + health (4); claim (1);
#            close (10).  now: claim on the alias (1); one read of service, pair, delivery, rate, health and 1
#            thread record (6); close of 6 items, the alias's claim removed in it (12)
UNITS = {
    "emailflow": {"phase 0": (4, 18), "phase 2": (6, 13), "phase 4": (5, 14)},
    "before issue 11": {"phase 0": (4, 17), "phase 2": (7, 11), "phase 4": (5, 12)},
}
"""(read units, write units) per message by path. Both include the per-sender budget (issue 10, on main before
issue 11 was merged) on mail to a service: one write unit as an ``UpdateItem`` of its own before issue 11, two
as an item of the claim's transaction now."""
CALLS = {"emailflow": {"phase 0": 3, "phase 2": 3, "phase 4": 3},
         "before issue 11": {"phase 0": 4, "phase 2": 4, "phase 4": 4}}
"""DynamoDB calls per message (S3 and SES come on top). Before issue 11, mail to a service included the sender
budget's ``UpdateItem`` (``EMAILFLOW_SENDER_MESSAGES_PER_HOUR``, on by default); now the claim's write counts it."""
DELIVERY_EVENT_UNITS = (2, 6)
"""SES's Delivery event for every sent message runs the bounces function: one read of 2 keys, one transaction of 3."""
BOUNCES_CPU_MS = 6.0
"""The bounces function's CPU for a Delivery event at one vCPU (assumption: its handler is a subset of the relay's
work; 256 MB, template.yaml on main)."""


@dataclass(frozen=True)
class Design:
    name: str
    memory_mb: int
    calls: Mapping[str, int]
    units: Mapping[str, tuple[int, int]]
    cpu_ms: Mapping[str, float]
    """CPU ms per message by size label, at one full vCPU."""


def _price(name: str) -> float:
    return PRICES[name][0]


def io_ms(size: int, dynamodb_calls: int) -> float:
    transfer = size / (IO["network_mb_per_s"] * MB) * 1e3
    return (IO["s3_first_byte_ms"] + transfer + dynamodb_calls * IO["dynamodb_call_ms"] + IO["ses_send_ms"]
            + transfer * 4 / 3)


def duration_ms(design: Design, label: str, dynamodb_calls: int) -> float:
    slowdown = max(1.0, CPU_VCPU_MB / design.memory_mb)
    return design.cpu_ms[label] * slowdown + io_ms(SIZES[label], dynamodb_calls)


def per_100k(design: Design, cold_start_cpu_ms: float, ses_plan: str) -> dict[str, float]:
    """Dollars per 100,000 relayed messages, by line."""
    gb_seconds = 0.0
    for label, share in SIZE_MIX.items():
        for path, path_share in PATH_MIX.items():
            gb_seconds += share * path_share * design.memory_mb / 1024 * duration_ms(
                design, label, design.calls[path]) / 1e3
    init_seconds = cold_start_cpu_ms * max(1.0, CPU_VCPU_MB / design.memory_mb) / 1e3
    gb_seconds += COLD_START_SHARE * design.memory_mb / 1024 * init_seconds
    reads = sum(share * design.units[path][0] for path, share in PATH_MIX.items()) + DELIVERY_EVENT_UNITS[0]
    writes = sum(share * design.units[path][1] for path, share in PATH_MIX.items()) + DELIVERY_EVENT_UNITS[1]
    mean_size = sum(share * SIZES[label] for label, share in SIZE_MIX.items())
    chunks = sum(share * math.ceil(SIZES[label] / (256 * KB)) for label, share in SIZE_MIX.items())
    attachments = sum(share * max(0, SIZES[label] - 3 * KB) for label, share in SIZE_MIX.items())
    bounces_seconds = (BOUNCES_CPU_MS * CPU_VCPU_MB / 256 + 2 * IO["dynamodb_call_ms"]) / 1e3
    bounces_gb_seconds = 0.25 * bounces_seconds
    return {
        "SES receiving (messages + 256 KB chunks)": MESSAGES * (_price("ses_inbound_message")
                                                                + chunks * _price("ses_inbound_chunk_256kb")),
        f"SES sending ({ses_plan}) + attachment data": MESSAGES * (_price(f"ses_outbound_{ses_plan}")
                                                                   + attachments / GB * _price("ses_attachments_gb")),
        "S3: SES's PUT, the relay's GET, 30 days of storage": MESSAGES * (
            _price("s3_put") + _price("s3_get")
            + mean_size / GB * RAW_MAIL_DAYS / 30.4 * _price("s3_storage_gb_month")),
        "Lambda relay: requests": MESSAGES * _price("lambda_request"),
        "Lambda relay: GB-seconds (arm64)": MESSAGES * gb_seconds * _price("lambda_gb_second_arm64"),
        "DynamoDB: relay + delivery events (on-demand units)": MESSAGES * (
            reads * _price("dynamodb_read_request_unit") + writes * _price("dynamodb_write_request_unit")),
        "DynamoDB storage (sent records kept 90 days)": MESSAGES * 2 * 700 / GB * 3 * _price(
            "dynamodb_storage_gb_month"),
        "SNS + bounces function for SES delivery events": MESSAGES * (
            _price("sns_publish") + _price("lambda_request") + bounces_gb_seconds * _price("lambda_gb_second_arm64")),
        "CloudWatch Logs ingestion": MESSAGES * (LOG_BYTES["relay"] + LOG_BYTES["bounces"]) / GB * _price(
            "cloudwatch_logs_ingest_gb"),
    }


def load_inputs(results: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float], float]:
    """Relay CPU ms by size, full-parse minus rewrite ms by size, and the cold start's CPU ms, from results.json."""
    profile = results.get("relay_profile", {}).get("sizes", {})
    rewrite = results.get("sizes", {})
    if not profile or not rewrite:
        raise SystemExit("benchmarks/results.json lacks relay_profile or the rewrite sizes: run make bench first")
    missing = [label for label in SIZE_MIX if label not in profile or label not in rewrite]
    if missing:
        raise SystemExit(f"results.json has no relay_profile or rewrite figures for {missing}: run make bench")
    relay_cpu = {label: float(profile[label]["median_ms"]["cpu"]) for label in SIZES if label in profile}
    parse_extra = {label: float(rewrite[label]["full_parse_ms"] or 0) - float(rewrite[label]["rewrite_ms"])
                   for label in SIZES if label in rewrite}
    cold = results.get("cold_start", {})
    cold_cpu = float(cold.get("imports", {}).get("relay", {}).get("median_cpu_ms", 300)) + float(
        cold.get("first_invocation_extra_ms", 200))
    return relay_cpu, parse_extra, cold_cpu


def designs(relay_cpu: Mapping[str, float], parse_extra: Mapping[str, float]) -> list[Design]:
    # The naive forwarder: stdlib parse and as_bytes() instead of the header rewrite, and botocore's own SESv2
    # encoding (~11 ms more per MB than the in-place body, bench_profile before/after).
    naive_cpu = {label: relay_cpu[label] + parse_extra.get(label, 0.0) + 11.0 * SIZES[label] / MB
                 for label in relay_cpu}
    return [
        Design("emailflow 512 MB", 512, CALLS["emailflow"], UNITS["emailflow"], relay_cpu),
        Design("emailflow 1024 MB", 1024, CALLS["emailflow"], UNITS["emailflow"], relay_cpu),
        Design("naive parse 1024 MB", 1024, CALLS["before issue 11"], UNITS["before issue 11"], naive_cpu),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--ses-plan", choices=("a_la_carte", "essentials"), default="a_la_carte")
    args = parser.parse_args(argv)
    results = json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() else {}
    relay_cpu, parse_extra, cold_cpu = load_inputs(results)
    table: dict[str, dict[str, float]] = {}
    for design in designs(relay_cpu, parse_extra):
        table[design.name] = per_100k(design, cold_cpu, args.ses_plan)
    names = list(table)
    print(f"dollars per {MESSAGES:,} relayed messages, us-east-1 (SES {args.ses_plan.replace('_', ' ')}); "
          "sizes and paths mixed as in benchmarks/cost_model.py")
    width = max(len(line) for line in table[names[0]])
    print(f"{'':<{width}} " + " ".join(f"{name:>20}" for name in names))
    for line in table[names[0]]:
        print(f"{line:<{width}} " + " ".join(f"{table[name][line]:>20.3f}" for name in names))
    totals = {name: sum(lines.values()) for name, lines in table.items()}
    print(f"{'total':<{width}} " + " ".join(f"{totals[name]:>20.2f}" for name in names))
    metrics_month = METRIC_SERIES * _price("cloudwatch_custom_metric_month")
    print(f"fixed per month, any volume: custom metrics ~${metrics_month:.2f} (EMF), the code secret $0.40")
    relay_by_size = {}
    for design in designs(relay_cpu, parse_extra):
        relay_by_size[design.name] = {label: round(duration_ms(design, label, 3), 1) for label in design.cpu_ms}
        print(f"estimated Lambda duration, {design.name}: " + ", ".join(
            f"{label} {ms:.0f} ms" for label, ms in relay_by_size[design.name].items()))
    merge_results(args.output, {"cost_model": {
        "per_100k_messages_usd": table, "totals_usd": totals, "ses_plan": args.ses_plan,
        "relay_cpu_ms_by_size": relay_cpu, "estimated_duration_ms": relay_by_size,
        "assumptions": {"size_mix": SIZE_MIX, "path_mix": PATH_MIX, "io": IO, "cold_start_share": COLD_START_SHARE,
                        "log_bytes": LOG_BYTES, "units": UNITS, "calls": CALLS},
        "prices": {name: {"usd": value, "source": source} for name, (value, source) in PRICES.items()},
        "designs": [asdict(design) for design in designs(relay_cpu, parse_extra)],
    }})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
