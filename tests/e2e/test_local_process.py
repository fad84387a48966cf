"""``emailflow local`` as a process, as a developer or a marketplace's test suite runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from tests.support.local import compose, mailbox, send

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60


def _environment() -> dict[str, str]:
    """This checkout on the path, and nothing of the test session's own local relay."""
    environ = {name: value for name, value in os.environ.items()
               if name not in ("AWS_ENDPOINT_URL", "EMAILFLOW_STACK") and not name.startswith("EMAILFLOW_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions"), str(ROOT)])
    return environ


def _read_line(stream: IO[str]) -> str:
    line = stream.readline()
    assert line, "emailflow local exited (or was stopped by the start-up watchdog) before it was ready"
    return line


def test_local_process_prints_export_then_ready_serves_the_cli_and_stops_on_sigterm(tmp_path: Path) -> None:
    # Given `emailflow local` started as a process on free ports
    command = [sys.executable, "-m", "emailflow.cli", "local", "--smtp-port", "0", "--mailbox", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,  # noqa: S603
                               env=_environment(), cwd=tmp_path)
    # A hang guard, not a timing target: a relay that never gets ready is killed, so the read below ends
    watchdog = threading.Timer(READY_TIMEOUT, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None

        # Then its first line is the export line, and the next one says it is ready and where SMTP listens
        export = _read_line(process.stdout)
        assert re.fullmatch(r"export AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+\n", export)
        ready = _read_line(process.stdout)
        watchdog.cancel()
        assert "ready" in ready
        smtp = re.search(r"smtp=127\.0\.0\.1:(\d+)", ready)
        assert smtp is not None

        # When another emailflow command runs with that variable exported
        environ = {**_environment(), "AWS_ENDPOINT_URL": export.strip().partition("=")[2]}
        owner = "owner@holiday-flats.example"
        add = [sys.executable, "-m", "emailflow.cli", "service", "add", owner, "--name", "Flats"]
        added = subprocess.run(add, capture_output=True, text=True, env=environ, timeout=60, check=False)  # noqa: S603

        # Then it acted on that relay: mail to the address it printed reaches the owner's Maildir
        assert added.returncode == 0, added.stderr
        address = added.stdout.strip()
        user = "jane@real-user.example"
        send("127.0.0.1", int(smtp[1]), user, [address], compose(("Jane", user), address, "Hello", "Hi!\n"))
        assert len(mailbox(tmp_path, owner)) == 1

        # When it gets SIGTERM, Then it stops cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
