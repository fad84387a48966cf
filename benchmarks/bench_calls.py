"""AWS calls per message: every call the real handlers make, counted with botocore's ``before-call`` event hook,
for each step of a conversation on in-process moto (tests/support/call_count.py holds the scenarios; the regression
test tests/integration/test_call_budget.py runs the same ones).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_calls.py [--output PATH]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "functions"), str(Path(__file__).resolve().parents[1])]

from benchmarks.results import RESULTS_PATH, merge_results
from benchmarks.support import relay_on_moto, template_globals_environment

TARGETS = {
    "phase 0: first message of a new pair": 4,
    "phase 4: user writes again (known pair)": 4,
    "phase 2: service replies to a user code": 4,
    "bounce: permanent, notice to the sender": 3,
}
"""Issue 11's budgets: at most this many calls (S3 read + SES send + every DynamoDB read and write)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    from benchmarks.support import environment, function_output_discarded

    with environment(template_globals_environment()), relay_on_moto(in_process=True) as stack, \
            function_output_discarded():
        from tests.support.call_count import CALL_BUDGETS, run_scenarios
        from tests.support.relay_stack import RelayHarness

        from bounces.app import handler as bounces_handler
        from relay.app import handler as relay_handler

        scenarios = run_scenarios(RelayHarness(stack=stack, handler=relay_handler), bounces_handler)

    print("AWS calls per message (botocore before-call hook, real handlers on moto):")
    results = {}
    for scenario in scenarios:
        target = TARGETS.get(scenario.name)
        budget = CALL_BUDGETS.get(scenario.name)
        verdict = "" if target is None else ("PASS" if len(scenario.calls) <= target else "FAIL")
        limits = "" if target is None else f" (issue target <= {target}, regression budget {budget})"
        print(f"{verdict:>4}  {len(scenario.calls)}  {scenario.name}{limits}")
        print(f"         {', '.join(scenario.calls)}")
        results[scenario.name] = {"count": len(scenario.calls), "calls": scenario.calls, "issue_target": target,
                                  "regression_budget": budget, "pass": None if target is None else
                                  len(scenario.calls) <= target,
                                  "outcome": {key: value for key, value in scenario.outcome.items()
                                              if key in ("action", "reason", "type")}}
    merge_results(args.output, {"aws_calls": results})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
