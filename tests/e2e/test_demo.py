"""`make demo` is documentation that runs: it must keep passing its own checks."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_the_whole_conversation_and_its_checks_pass() -> None:
    # Given a fresh process (local mode is one per process, and this package's tests run one already)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}

    # When the demo runs
    result = subprocess.run([sys.executable, "-m", "emailflow.local.demo"], capture_output=True, text=True,
                            timeout=300, env=environment, check=False)

    # Then every hop printed, the new sender was allowed through its link, and it ends OK
    assert result.returncode == 0, result.stdout + result.stderr
    for hop in ("[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]", "[9]"):
        assert f"{hop} " in result.stdout, hop
    assert "bug!" not in result.stdout
    assert result.stdout.rstrip().endswith(": OK")
