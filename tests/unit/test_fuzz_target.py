"""The fuzz target keeps working (docs/operations.md, "Fuzzing the relay"): a short seeded run, and a replay."""

from __future__ import annotations

from pathlib import Path

from tests.fuzz.fuzz_relay import main, run_for, seeds


def test_fuzz_target_runs_a_second_without_breaking_an_invariant() -> None:
    # Given the fuzz target and a fixed seed, When it runs for a second
    tried = run_for(1.0, seed=7)

    # Then it tried many inputs and none broke an invariant (it would have raised)
    assert tried > 20


def test_fuzz_target_replays_a_saved_input(tmp_path: Path) -> None:
    # Given a saved input (a fixture message, to a service)
    saved = tmp_path / "input"
    saved.write_bytes(b"\x00" + seeds()[0])

    # When it is replayed, Then it passes
    assert main(["--replay", str(saved)]) == 0
