"""What the benchmarks share: the relay's resources on moto (in this process or in a moto server of its own), the
function environment from template.yaml, a test corpus message of any size, and small statistics helpers.

Nothing here is imported by a Lambda handler.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
FUNCTIONS = REPO_ROOT / "functions"
DOMAIN = "relay.example"
BRAND = "emailflow"
USER = "jane.doe@real-user.example"
OWNER = "owner@holiday-flats.example"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
"""moto's own test credentials: no benchmark may ever reach a real AWS account."""


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a benchmark's child interpreter: this one's, the package on the path, fake credentials,
    no endpoint override unless ``extra`` sets one."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("AWS_") and name not in ("PYTHONDONTWRITEBYTECODE",)}
    env["PYTHONPATH"] = os.pathsep.join([str(FUNCTIONS), str(REPO_ROOT)])
    env.update(FAKE_CREDENTIALS)
    env.update(extra or {})
    return env


def template_globals_environment() -> dict[str, str]:
    """Globals.Function.Environment of template.yaml: what every function's process has (Powertools settings)."""
    from emailflow.local.template import load_template

    template = load_template()
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(value) for name, value in variables.items()}


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then put the old values back."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def function_output_discarded() -> Iterator[None]:
    """Send what the functions write to stdout (Powertools' JSON logs and EMF metric lines) to /dev/null, the way
    Lambda hands it to CloudWatch: the work of writing stays, the terminal stays readable. Warnings go too."""
    import warnings

    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def relay_on_moto(*, in_process: bool = True) -> Iterator[Any]:
    """The template's resources on moto and the relay function's environment applied; yields the ``LocalStack``.

    ``in_process``: moto's ``mock_aws`` in this process (its backends then share this process's memory and CPU);
    otherwise the caller has set ``AWS_ENDPOINT_URL`` to a moto server of its own (``moto_server``).
    """
    from emailflow import wiring
    from emailflow.local.stack import deploy_locally

    with environment(FAKE_CREDENTIALS), contextlib.ExitStack() as stack:
        if in_process:
            from moto import mock_aws

            from emailflow.local.moto_ses import install_byte_exact_sesv2

            stack.enter_context(mock_aws())
            install_byte_exact_sesv2()
        created = deploy_locally({"DomainName": DOMAIN, "BrandName": BRAND})
        stack.enter_context(environment(created.function_environment("RelayFunction")))
        wiring.reset()
        try:
            yield created
        finally:
            wiring.reset()


_SERVER_SCRIPT = """
import logging
import sys
logging.getLogger("werkzeug").setLevel(logging.WARNING)
from moto.server import ThreadedMotoServer
from emailflow.local.moto_ses import install_byte_exact_sesv2
install_byte_exact_sesv2()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in a process of its own (its memory and CPU are not the relay's); yields its endpoint URL."""
    process = subprocess.Popen([sys.executable, "-c", _SERVER_SCRIPT], stdin=subprocess.PIPE,  # noqa: S603
                               stdout=subprocess.PIPE, env=child_environment(), text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def register_service(name: str = "María García", addresses: Sequence[str] = (OWNER,)) -> tuple[Any, str]:
    """A service registered the way the CLI does it; returns it and its relay address."""
    from emailflow import wiring
    from emailflow.services import register_service as register
    from emailflow.services import service_address

    context = wiring.relay_context()
    service = register(context.directory, context.codebook, list(addresses), name,
                       relay_domain=context.addressing.domain)
    return service, service_address(context.addressing, service)


def receipt_event(raw: bytes, message_id: str, recipients: Sequence[str], source: str) -> dict[str, Any]:
    """The SES receipt-rule event for one stored message (every verdict PASS)."""
    from emailflow.local.ses_inbound import receipt_event as make_event

    return make_event(raw, message_id, recipients, source)


def message_of_size(size: int, *, to: str, sender: str = USER, seed: int = 11, quote_sender: bool = False) -> bytes:
    """A realistic mail of ``size`` bytes (+-0.1 %): a short text part and one base64 attachment filling the rest.

    ``quote_sender``: the text part quotes the sender's address, so the relay's body masking has work to do.
    """
    quoted = f"On Tue, {sender} wrote:\r\n> is the flat free in July?\r\n" if quote_sender else ""
    head = (f"From: Jane Doe <{sender}>\r\nTo: {to}\r\nSubject: plans for July\r\n"
            f"Message-ID: <bench-{seed}-{size}@real-user.example>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Here are the plans.\r\n{quoted}\r\n"
            "--b1\r\nContent-Type: application/pdf; name=\"plans.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            ).encode()
    tail = b"--b1--\r\n"
    room = max(0, size - len(head) - len(tail))
    raw_bytes = (room // 78) * 57 + max(0, room % 78 - 2) * 3 // 4
    payload = base64.encodebytes(random.Random(seed).randbytes(raw_bytes)).replace(b"\n", b"\r\n")
    return head + payload + tail


def run_child(arguments: Sequence[str], env: Mapping[str, str]) -> str:
    """Run a benchmark's child interpreter; its stdout, or its stderr in the error when it fails."""
    result = subprocess.run([sys.executable, *arguments], env=dict(env), capture_output=True, text=True,  # noqa: S603
                            cwd=REPO_ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child {arguments} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def last_json_line(output: str) -> Any:
    """The child's result: its last line of stdout (the functions' own log lines come before it)."""
    import json

    return json.loads(output.strip().splitlines()[-1])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """Lower and upper quartile (the spread a reader should expect between runs on this machine)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


class Stopwatch:
    """Milliseconds since it was made (``perf_counter``)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        return (time.perf_counter() - self._start) * 1e3
