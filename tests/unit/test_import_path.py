"""What the handlers' modules import at cold start: the modules only a rare path needs stay out of it.

Every module imported at the top of a handler is paid for on every cold start (benchmarks/bench_coldstart.py,
issue 11's import budget). Error mails (``notices``), the off-platform signal (``signals``) and new senders held for
approval (``senders``) are imported where they are used; so is ``email.policy``, which each of them pulls in.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

RARE = ("emailflow.signals", "emailflow.senders", "email.policy")


@pytest.mark.parametrize(("modules", "deferred"), [
    ("emailflow.wiring, emailflow.relay, emailflow.adapters.dynamodb, emailflow.adapters.sesv2",
     ("emailflow.notices", *RARE)),
    ("emailflow.wiring, emailflow.bounces, emailflow.adapters.dynamodb", RARE),  # bounce notices are its job
])
def test_import_path_of_the_handlers_leaves_out_rarely_used_modules(modules: str, deferred: tuple[str, ...]) -> None:
    # Given a fresh interpreter that imports what a handler's cold start imports
    code = f"import sys, {modules}; print(' '.join(name for name in {deferred!r} if name in sys.modules))"

    # When it has imported them
    result = subprocess.run([sys.executable, "-c", code],  # noqa: S603 - this interpreter, a fixed program
                            capture_output=True, text=True, check=True)

    # Then none of the deferred modules was loaded
    assert result.stdout.split() == []
