"""What the handlers' modules import at cold start: the modules only a rare path needs stay out of it.

Every module imported at the top of a handler is paid for on every cold start (benchmarks/bench_coldstart.py,
issue 11's import budget), and on Python 3.11 each frozen dataclass a module defines costs ~1 ms of it.

- Error mails (``notices``), the off-platform signal (``signals``), new senders held for approval (``senders``) and
  the download link of an oversize message (``downloads``, with the signed tokens of ``links``) are imported where
  they are used; so is ``email.policy``, which the first three pull in.
- The bounces function writes a notice only for a bounce: it leaves out ``notices`` and what only a notice needs
  (``rewrite``, ``message``, the loop marker) until one is written, and the relay's receipt event types
  (``events``) altogether.
- SES feedback and what the store keeps of it (``feedback``, with ``SentRecord`` and ``AddressHealth``) are the
  bounces function's: the relay leaves them out.
- What only operators, local mode and the API use is no handler's: the operator side of a deployment
  (``operations``), registering services (``services``, with its request types) and listing the inbound bucket for
  a redrive or a replay (``stored``, with ``StoredMail``).

Each handler is imported the way Lambda imports it (``import relay.app``), in a fresh interpreter, from this
checkout's ``functions/``: not from whatever copy of the package the virtual environment has installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
RARE = ("emailflow.signals", "emailflow.senders", "emailflow.downloads", "emailflow.links", "email.policy")
OPERATOR = ("emailflow.operations", "emailflow.services", "emailflow.stored")
"""Modules no handler needs: the CLI's, the API's and local mode's."""
NOTICES = ("emailflow.notices",)
NOTICE_ONLY = ("emailflow.rewrite", "emailflow.message", "emailflow.loops")
"""What the bounces function needs for a notice alone (the relay needs them for every message)."""


def _loaded_after_import(module: str, names: tuple[str, ...]) -> tuple[list[str], str]:
    """The ``names`` in ``sys.modules`` after a fresh interpreter imported ``module``, and where ``emailflow`` came
    from."""
    code = (f"import sys, {module}, emailflow; print(emailflow.__file__); "
            f"print(' '.join(name for name in {names!r} if name in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(FUNCTIONS), "POWERTOOLS_SERVICE_NAME": "emailflow",
           "POWERTOOLS_METRICS_NAMESPACE": "emailflow"}
    result = subprocess.run([sys.executable, "-c", code],  # noqa: S603 - this interpreter, a fixed program
                            capture_output=True, text=True, check=True, env=env)
    origin, _, loaded = result.stdout.partition("\n")
    return loaded.split(), origin


@pytest.mark.parametrize(("handler", "deferred"), [
    ("relay.app", (*NOTICES, *RARE, *OPERATOR, "emailflow.feedback", "emailflow.bounces")),
    ("bounces.app", (*NOTICES, *NOTICE_ONLY, *RARE, *OPERATOR, "emailflow.events")),
])
def test_import_path_of_the_handlers_leaves_out_rarely_used_modules(handler: str, deferred: tuple[str, ...]) -> None:
    # Given a fresh interpreter that imports a handler module, as Lambda does at cold start
    # When it has imported it
    loaded, origin = _loaded_after_import(handler, deferred)

    # Then none of the deferred modules was loaded (and the package was this checkout's)
    assert Path(origin).is_relative_to(FUNCTIONS)
    assert loaded == []


def test_import_path_check_sees_a_module_that_is_loaded() -> None:
    # Given the modules the relay handler needs for every message
    needed = ("emailflow.rewrite", "emailflow.message", "emailflow.loops")

    # When the check above looks for them after importing the relay handler
    loaded, _ = _loaded_after_import("relay.app", needed)

    # Then it finds them: an empty answer above means "not loaded", not "not looked for"
    assert loaded == list(needed)
