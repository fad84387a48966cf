"""Cold start: what importing each handler module costs, against ``import boto3`` alone, and what the first
invocation costs on top of a warm one.

1. **Import**: every statement runs in a fresh interpreter (``python -c``) that times only the import itself, in
   CPU time (``process_time``: on a shared machine wall time also counts waiting for a core; interpreter start-up
   is the same for all and left out), with the functions' environment from template.yaml. Each round imports
   boto3, relay and bounces one after the other (rotating the order), so that a noisy neighbour slows a round's
   imports alike; the gated ratio is the median over rounds of the ratio within a round, printed beside the ratio
   of the medians and the ratio of the minimums. ``-X importtime`` then names the modules the relay handler imports
   beyond boto3's, and a paired pass imports the package from a copy without ``__pycache__`` (what a deployment
   package without compiled files costs: Lambda's code directory is read-only, so nothing gets cached there).
2. **First invocation**: a fresh interpreter on in-process moto relays a first message of a new pair through the
   real handler, then more such messages; the first pays for settings, the Secrets Manager read, client creation
   and botocore's service models. The same child times those pieces one by one.

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_coldstart.py [--runs N] [--output PATH]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, environment, merge_results
from benchmarks.support import (
    FUNCTIONS,
    OWNER,
    REPO_ROOT,
    child_environment,
    last_json_line,
    median,
    quartiles,
    run_child,
    template_globals_environment,
)

TARGET_IMPORT_RATIO = 1.2
"""Importing a handler module may cost at most this many times ``import boto3`` alone (issue 11)."""
STATEMENTS = {"boto3": "import boto3", "relay": "import relay.app", "bounces": "import bounces.app"}
_TIMED_IMPORT = ("import time; c, t = time.process_time(), time.perf_counter(); {statement}; "
                 "print(time.process_time() - c, time.perf_counter() - t)")


def _import_ms(statement: str, env: dict[str, str]) -> tuple[float, float]:
    """CPU and wall milliseconds of one import in a fresh interpreter."""
    output = subprocess.run([sys.executable, "-c", _TIMED_IMPORT.format(statement=statement)],  # noqa: S603
                            env=env, capture_output=True, text=True, check=True, cwd=REPO_ROOT).stdout
    cpu, wall = output.strip().splitlines()[-1].split()
    return float(cpu) * 1e3, float(wall) * 1e3


def measure_imports(runs: int, env: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU and wall import times (ms) per statement, interleaved, after one untimed round (bytecode written).

    CPU time (``process_time``) is the figure the ratio uses: on a shared machine, wall time also counts the time
    the child waited for a core, which has nothing to do with what it imports."""
    for statement in STATEMENTS.values():
        _import_ms(statement, env)
    cpu: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    wall: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    names = list(STATEMENTS)
    for round_ in range(runs):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            cpu_ms, wall_ms = _import_ms(STATEMENTS[name], env)
            cpu[name].append(cpu_ms)
            wall[name].append(wall_ms)
    return cpu, wall


def measure_imports_uncompiled(runs: int, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """What a package without compiled files costs: each handler imported from a copy of ``functions/`` with no
    ``__pycache__`` (and none written), paired with the same import from the tree, so that a noisy neighbour hits
    both of a pair alike. Medians of the uncompiled CPU ms and of the paired differences (the compile cost)."""
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / "functions"
        shutil.copytree(FUNCTIONS, copy, ignore=shutil.ignore_patterns("__pycache__", "local"))
        uncompiled = {**env, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        figures = {}
        for name, statement in STATEMENTS.items():
            if name == "boto3":
                continue
            pairs = [(_import_ms(statement, uncompiled)[0], _import_ms(statement, env)[0]) for _ in range(runs)]
            figures[name] = {"uncompiled_ms": median([cold for cold, _ in pairs]),
                             "compile_cost_ms": median([cold - warm for cold, warm in pairs])}
        return figures


def import_breakdown(env: dict[str, str], runs: int = 5, top: int = 12) -> list[tuple[str, float]]:
    """Modules ``import relay.app`` loads that ``import boto3`` does not, by median self time (``-X importtime``)."""

    def self_times(statement: str) -> dict[str, float]:
        samples: dict[str, list[int]] = collections.defaultdict(list)
        for _ in range(runs):
            stderr = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], env=env,  # noqa: S603
                                    capture_output=True, text=True, check=True, cwd=REPO_ROOT).stderr
            for line in stderr.splitlines():
                if line.startswith("import time:") and "self [us]" not in line:
                    self_us, _, name = line.removeprefix("import time:").split("|")
                    samples[name.strip()].append(int(self_us))
        return {name: median(values) / 1e3 for name, values in samples.items()}

    base = self_times(STATEMENTS["boto3"])
    relay = self_times(STATEMENTS["relay"])
    extra = {name: ms for name, ms in relay.items() if name not in base}
    return sorted(extra.items(), key=lambda item: -item[1])[:top]


# --- first invocation (child process) ---------------------------------------------------------------------------


def _child(mode: str, warm_runs: int) -> dict[str, Any]:
    """In a fresh interpreter on in-process moto, with nothing of the relay's created yet (settings, keyring,
    clients): ``first-invocation`` times the first handler call and warm ones (wall and CPU ms); ``pieces`` times,
    instead, what the first call pays for, one piece at a time, in the order it pays it."""
    import time

    import boto3

    from benchmarks.support import Stopwatch, message_of_size, receipt_event, relay_on_moto
    from emailflow.adapters import clients
    from emailflow.adapters.dynamodb import DynamoDirectory
    from emailflow.adapters.secrets import load_keyring
    from emailflow.codes import CodeBook
    from emailflow.config import get_settings
    from emailflow.local.lambda_context import LocalLambdaContext
    from emailflow.services import register_service, service_address

    with relay_on_moto(in_process=True):
        # Everything the benchmark itself needs goes through clients of its own: the relay's stay uncreated.
        settings = get_settings()
        ring = load_keyring(settings.code_secret_arn, client=boto3.client("secretsmanager"))
        directory = DynamoDirectory(settings.table_name, client=boto3.client("dynamodb"))
        from emailflow import wiring

        relay_addressing = wiring.addressing(settings)
        service = register_service(directory, CodeBook(ring), [OWNER], "María García",
                                   relay_domain=relay_addressing.domain)
        address = service_address(relay_addressing, service)
        s3 = boto3.client("s3")
        events = []
        for number in range(warm_runs + 1):
            sender = f"user{number}@real-user.example"
            raw = message_of_size(3 * 1024, to=address, sender=sender, seed=number)
            message_id = f"cold{number:04d}"
            s3.put_object(Bucket=settings.inbound_bucket, Key=f"{settings.inbound_prefix}{message_id}", Body=raw)
            events.append(receipt_event(raw, message_id, [address], sender))
        wiring.reset()

        from relay.app import handler

        if mode == "pieces":
            pieces: dict[str, float] = {}
            for name, step in (("settings", get_settings), ("secretsmanager client (and the session)",
                                                            clients.secretsmanager_client),
                               ("keyring (GetSecretValue)", wiring.keyring), ("wiring", wiring.relay_context),
                               ("s3 client", clients.s3_client), ("dynamodb client", clients.dynamodb_client),
                               ("sesv2 client", clients.sesv2_client)):
                watch = Stopwatch()
                step()
                pieces[name] = watch.ms()
            return {"pieces_ms": pieces}

        def timed(event: dict[str, Any]) -> tuple[float, float]:
            cpu, watch = time.process_time(), Stopwatch()
            result = handler(event, LocalLambdaContext())
            assert result["outcomes"][0]["action"] == "forwarded", result
            return watch.ms(), (time.process_time() - cpu) * 1e3

        first_ms, first_cpu_ms = timed(events[0])
        warm = [timed(event) for event in events[1:]]
    return {"first_ms": first_ms, "first_cpu_ms": first_cpu_ms, "warm_ms": [wall for wall, _ in warm],
            "warm_cpu_ms": [cpu for _, cpu in warm]}


def measure_first_invocation(warm_runs: int, env: dict[str, str]) -> dict[str, Any]:
    first: dict[str, Any] = last_json_line(run_child([__file__, "--child", "first-invocation", "--runs",
                                                      str(warm_runs)], env))
    first |= last_json_line(run_child([__file__, "--child", "pieces", "--runs", "0"], env))
    return first


# --- report -----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=21, help="fresh interpreters per import statement (>= 10)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--child", choices=("first-invocation", "pieces"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.runs)))
        return 0

    env = child_environment(template_globals_environment())
    print(f"cold start: {args.runs} fresh interpreters per import, interleaved; CPU ms of the import (median "
          "[q1-q3]); ratios: median of the ratios within each round, ratio of the medians, ratio of the minimums")
    cpu, wall = measure_imports(args.runs, env)
    boto3_ms, boto3_wall = median(cpu["boto3"]), median(wall["boto3"])
    imports: dict[str, Any] = {}
    for name, statement in STATEMENTS.items():
        low, high = quartiles(cpu[name])
        paired = median([mine / reference for mine, reference in zip(cpu[name], cpu["boto3"], strict=True)])
        ratio, minimums = median(cpu[name]) / boto3_ms, min(cpu[name]) / min(cpu["boto3"])
        imports[name] = {"statement": statement, "median_cpu_ms": median(cpu[name]), "q1_cpu_ms": low,
                         "q3_cpu_ms": high, "median_wall_ms": median(wall[name]), "ratio_vs_boto3": paired,
                         "ratio_of_medians": ratio, "ratio_of_minimums": minimums,
                         "wall_ratio_of_medians": median(wall[name]) / boto3_wall,
                         "cpu_samples_ms": cpu[name], "wall_samples_ms": wall[name]}
        print(f"  {statement:<20} {median(cpu[name]):7.1f} [{low:6.1f}-{high:6.1f}]  {paired:5.2f}x / {ratio:4.2f}x"
              f" / {minimums:4.2f}x boto3")
    uncompiled = measure_imports_uncompiled(max(5, args.runs // 2), env)
    for name, figures in uncompiled.items():
        print(f"  {STATEMENTS[name]:<20} {figures['uncompiled_ms']:7.1f}  without __pycache__ (a read-only code "
              f"directory shipped without compiled files): {figures['compile_cost_ms']:+.1f} ms, paired")
    breakdown = import_breakdown(env)
    print("  modules the relay handler imports beyond boto3 (median self ms, -X importtime):")
    for module, ms in breakdown:
        print(f"    {ms:6.2f}  {module}")

    first = measure_first_invocation(max(10, args.runs), env)
    warm_ms, warm_cpu_ms = median(first["warm_ms"]), median(first["warm_cpu_ms"])
    print(f"first invocation on moto: {first['first_ms']:.1f} ms ({first['first_cpu_ms']:.1f} ms CPU); warm: "
          f"{warm_ms:.1f} ms ({warm_cpu_ms:.1f} ms CPU, median of {len(first['warm_ms'])}); extra on the first: "
          f"{first['first_ms'] - warm_ms:.1f} ms ({first['first_cpu_ms'] - warm_cpu_ms:.1f} ms CPU); its pieces, "
          "timed one by one in another fresh interpreter (ms):")
    for piece, ms in first["pieces_ms"].items():
        print(f"    {ms:6.1f}  {piece}")

    targets = {name: {"value": imports[name]["ratio_vs_boto3"], "target": f"<= {TARGET_IMPORT_RATIO}",
                      "pass": imports[name]["ratio_vs_boto3"] <= TARGET_IMPORT_RATIO} for name in ("relay", "bounces")}
    for name, target in targets.items():
        print(f"{'PASS' if target['pass'] else 'FAIL'}  import {name}.app / import boto3 = {target['value']:.2f} "
              f"(target {target['target']})")
    merge_results(args.output, {"cold_start": {
        "imports": imports,
        "imports_without_pycache_ms": uncompiled,
        "relay_import_breakdown_ms": dict(breakdown),
        "first_invocation_ms": first["first_ms"],
        "first_invocation_cpu_ms": first["first_cpu_ms"],
        "warm_invocation_ms": warm_ms,
        "warm_invocation_cpu_ms": warm_cpu_ms,
        "first_invocation_extra_ms": first["first_ms"] - warm_ms,
        "first_invocation_extra_cpu_ms": first["first_cpu_ms"] - warm_cpu_ms,
        "first_invocation_pieces_ms": first["pieces_ms"],
        "targets": targets,
        "environment": environment(),
    }})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
