"""Local mode: the real relay on one machine, behind a real SMTP port, with no AWS account.

``LocalRelay`` starts, in this process:

1. an AWS emulator (moto's ``ThreadedMotoServer``) on a free loopback port;
2. the template's resources in it (``deploy_locally``: the same code the tests use), and a CloudFormation stack
   carrying the template's outputs, where the CLI finds the settings (``register_stack``);
3. this process's environment as the Lambda runtime would set the relay function's, and the real handler, imported
   the way Lambda imports it (``Handler`` under ``CodeUri``);
4. an SMTP server playing SES inbound (``emailflow.local.smtp``) and SES's outbound delivery into Maildirs or a
   smarthost (``emailflow.local.delivery``), with the mailbox simulator (``emailflow.local.simulator``).

One local relay per process: moto's backends and the SES seam are process-wide. ``stop`` puts everything back,
the environment included.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from moto.server import ThreadedMotoServer

from emailflow import wiring
from emailflow.adapters.s3 import S3MailStore
from emailflow.api import handle as handle_api
from emailflow.approval_pages import handle_approval
from emailflow.client import Relay
from emailflow.codes import CodeBook
from emailflow.config import DEFAULT_STACK, Settings, get_settings, local_region, set_process_environment
from emailflow.downloads import handle_download
from emailflow.local.delivery import Deliver, MaildirDelivery, Outbox, SmarthostDelivery
from emailflow.local.lambda_context import LocalLambdaContext
from emailflow.local.lambda_runtime import invoke_async
from emailflow.local.moto_ses import (
    OutboundMail,
    add_outbound_listener,
    install_byte_exact_sesv2,
    remove_outbound_listener,
)
from emailflow.local.pages import PageServer
from emailflow.local.ses_inbound import PASS_VERDICTS, LocalInbound
from emailflow.local.simulator import SimulatorHook
from emailflow.local.smtp import InboundHandler, LocalController, RecipientGate, smtp_controller
from emailflow.local.stack import ACCOUNT_ID, LocalStack, deploy_locally, register_stack
from emailflow.observability import logger
from emailflow.operations import Operations
from emailflow.operations import operations as operator_side

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RELAY_FUNCTION = "RelayFunction"
BOUNCES_HANDLER = "bounces.app.handler"
"""The bounces function's handler. Local mode runs it in the relay's process with the relay's environment: the
template gives both functions the same ``EMAILFLOW_*`` settings (tests/integration/test_template_transform.py)."""
EMULATOR_HOST = "127.0.0.1"
"""The emulator listens on loopback only, whatever ``--host`` the SMTP server uses: it has no authentication."""
_LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
_POWERTOOLS_PREFIX = "POWERTOOLS_"

_running = threading.Lock()


@dataclass(frozen=True)
class LocalOptions:
    """What ``emailflow local`` takes on its command line."""

    domain: str = "relay.example"
    brand: str | None = None
    """None: the template's default."""
    host: str = "127.0.0.1"
    smtp_port: int = 2525
    """0: any free port (read ``LocalRelay.smtp_port`` after start)."""
    mailbox: Path = Path("mailbox")
    smarthost: tuple[str, int] | None = None
    verdicts: Mapping[str, str] = field(default_factory=lambda: dict(PASS_VERDICTS))
    stack_name: str = DEFAULT_STACK
    log_stream: TextIO | None = None
    """Where the functions' logs and metric lines go; None leaves them on stdout (as in Lambda)."""


class LocalRelay:
    """The relay, its emulator, its SMTP server and its mail delivery, started and stopped together."""

    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.mailbox = options.mailbox.resolve()
        self._cleanup = contextlib.ExitStack()
        self._controller: LocalController | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._stack: LocalStack | None = None
        self._settings: Settings | None = None
        self._simulator: SimulatorHook | None = None
        self.endpoint_url = ""
        self.approval_url = ""
        """The local new-sender approval page (what approval mails link to)."""
        self.download_url = ""
        """The local oversize mail downloads (what link mails link to, ``<url>/<token>``)."""
        self.api_url = ""
        """The local marketplace HTTP API (``POST <url>/services``, ...; unsigned: loopback only)."""
        self.outputs: dict[str, str] = {}

    # -- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> LocalRelay:
        if not _running.acquire(blocking=False):
            raise RuntimeError("a local relay is already running in this process (moto's state is process-wide)")
        self._cleanup.callback(_running.release)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        _check_port_free(options.host, options.smtp_port)  # before seconds of start-up, not after them
        region = self._start_emulator()
        pages = PageServer(EMULATOR_HOST, approval=self._approval_page, download=self._download, api=self._api,
                           account=ACCOUNT_ID)
        pages.start()
        self._cleanup.callback(pages.stop)
        self.approval_url, self.download_url, self.api_url = pages.approval_url, pages.download_url, pages.api_url
        stack = deploy_locally(
            {"DomainName": options.domain, **({"BrandName": options.brand} if options.brand else {}),
             "NewSenderApprovals": "true", "ApprovalUrl": pages.approval_url, "DownloadUrl": pages.download_url},
            stack_name=options.stack_name, region=region)
        self._stack = stack
        self.outputs = register_stack(stack, options.stack_name)
        environment = stack.function_environment(RELAY_FUNCTION)
        # The relay function's environment, as Lambda sets it; a developer's POWERTOOLS_* values win.
        self._cleanup.callback(set_process_environment(
            environment, keep_existing=[name for name in environment if name.startswith(_POWERTOOLS_PREFIX)]))
        wiring.reset()
        self._settings = get_settings()
        outbox = self._start_delivery(region)
        inbound = self._inbound(stack, region, outbox)
        gate = RecipientGate(wiring.addressing(self._settings), CodeBook(wiring.keyring()))
        # One worker: the relay function runs one invocation at a time here, like a function with reserved
        # concurrency 1. Its Powertools logger and metrics are process-wide state that concurrent runs would mix.
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="emailflow-relay")
        self._executor = executor
        self._cleanup.callback(outbox.drain)
        self._cleanup.callback(executor.shutdown, wait=True)

        def deliver_soon(_: OutboundMail) -> None:
            # Mail sent from outside an invocation (the CLI's redrive, an operator's script) is delivered too; on
            # the one worker, so never while an invocation runs: mail an invocation sends goes out after it.
            executor.submit(outbox.drain)

        add_outbound_listener(deliver_soon)
        self._cleanup.callback(remove_outbound_listener, deliver_soon)
        controller = smtp_controller(InboundHandler(gate, inbound.receive, executor), options.host,
                                     options.smtp_port, hostname=f"inbound-smtp.{self._settings.domain}")
        controller.start()
        self._controller = controller
        self._cleanup.callback(controller.stop)
        logger.info("local relay started", endpoint=self.endpoint_url, smtp_port=self.smtp_port,
                    domain=self._settings.domain, delivery="smarthost" if options.smarthost else "maildir")

    def _start_emulator(self) -> str:
        """moto on a free loopback port, and this process pointed at it as the Lambda runtime would be. Returns the
        region."""
        # Werkzeug logs every emulator request at INFO: noise for local mode's user, and on stderr besides.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=EMULATOR_HOST, port=0, verbose=False)
        server.start()
        self._cleanup.callback(server.stop)
        self.endpoint_url = f"http://{EMULATOR_HOST}:{server.get_host_and_port()[1]}"
        region = local_region()
        # Every AWS call of this process goes to the emulator, with the emulator's credentials, never with a
        # developer's profile.
        self._cleanup.callback(set_process_environment(
            {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
             **_LOCAL_CREDENTIALS}, remove=("AWS_PROFILE", "AWS_SESSION_TOKEN")))
        self._cleanup.callback(wiring.reset)
        wiring.reset()
        install_byte_exact_sesv2()
        return region

    def _start_delivery(self, region: str) -> Outbox:
        """SES's outbound half: Maildirs or the smarthost, and the mailbox simulator."""
        options = self.options
        self._simulator = SimulatorHook(
            _optional_handler(), LocalLambdaContext(function_name=f"{options.stack_name}-bounces"),
            topic_arn=f"arn:aws:sns:{region}:{ACCOUNT_ID}:{options.stack_name}-ses-events",
            account_id=ACCOUNT_ID, region=region)
        deliver: Deliver = SmarthostDelivery(*options.smarthost) if options.smarthost else MaildirDelivery(self.mailbox)
        outbox = Outbox(deliver, self._simulator, self.settings.ses_message_id_domain)
        add_outbound_listener(outbox.put)
        self._cleanup.callback(remove_outbound_listener, outbox.put)
        return outbox

    def _inbound(self, stack: LocalStack, region: str, outbox: Outbox) -> LocalInbound:
        """SES's inbound half: the S3 action, then the Lambda action (the relay handler, as Lambda runs it)."""
        name = f"{self.options.stack_name}-{RELAY_FUNCTION}"
        context = LocalLambdaContext(function_name=name,
                                     invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}")
        relay_handler = stack.function_handler(RELAY_FUNCTION)
        retries = int(stack.function_setting(RELAY_FUNCTION, "EventInvokeConfig", "MaximumRetryAttempts") or 0)
        dead_letters = dead_letter_destination(stack)

        def lambda_action(event: dict[str, Any]) -> None:
            with self._function_output():
                invoke_async(relay_handler, event, context, retries=retries, on_failure=dead_letters)
                outbox.drain()  # SES delivers after SendEmail answered, and after the invocation returned

        s3: S3Client = boto3.session.Session().client("s3")
        return LocalInbound(bucket=self.settings.inbound_bucket, prefix=self.settings.inbound_prefix,
                            lambda_action=lambda_action, s3=s3, verdicts=dict(self.options.verdicts))

    def _on_worker(self, page: Callable[[], Any]) -> dict[str, Any]:
        """Answer one HTTP request as its function would, on the one worker: ``page()``'s proxy result."""
        if self._executor is None:
            return {"statusCode": 503, "headers": {}, "body": "starting"}

        def answer() -> dict[str, Any]:
            with self._function_output():
                result: dict[str, Any] = page().as_proxy_result()
                return result

        return self._executor.submit(answer).result()

    def _approval_page(self, event: dict[str, Any]) -> dict[str, Any]:
        """One request of the approval page (the approval function)."""
        return self._on_worker(lambda: handle_approval(event, lambda: Relay.from_settings(self.settings)))

    def _download(self, event: dict[str, Any]) -> dict[str, Any]:
        """One click on an oversize link (the downloads function)."""
        def store() -> S3MailStore:
            return S3MailStore(self.settings.inbound_bucket, self.settings.inbound_prefix)

        return self._on_worker(lambda: handle_download(event, wiring.keyring, store, int(time.time())))

    def _api(self, event: dict[str, Any]) -> dict[str, Any]:
        """One request of the marketplace API (the API function)."""
        return self._on_worker(lambda: handle_api(event, ACCOUNT_ID, lambda: Relay.from_settings(self.settings)))

    def settle(self) -> None:
        """Wait until every invocation and delivery queued so far is done (tests, after a CLI command sent mail)."""
        if self._executor is not None:
            self._executor.submit(lambda: None).result()

    def stop(self) -> None:
        """Stop the SMTP server, let running invocations finish and deliver what they sent, stop the emulator,
        restore the environment. Safe to call twice."""
        cleanup, self._cleanup = self._cleanup, contextlib.ExitStack()
        cleanup.close()
        self._controller = None

    def __enter__(self) -> LocalRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what callers read ------------------------------------------------------------------------------------

    @property
    def smtp_host(self) -> str:
        return self.options.host

    @property
    def smtp_port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the local relay is not running")
        return int(self._controller.port)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("the local relay is not running")
        return self._settings

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            raise RuntimeError("the local relay is not running")
        return self._stack

    @property
    def simulator_events(self) -> list[dict[str, Any]]:
        """Every SNS event the mailbox simulator produced so far."""
        return list(self._simulator.published) if self._simulator is not None else []

    def operations(self) -> Operations:
        """The operator side (services), wired exactly as the CLI wires it."""
        return operator_side(self.settings)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _function_output(self) -> contextlib.AbstractContextManager[Any]:
        """Send what the function prints (its logs and EMF metric lines) to ``log_stream``: ``emailflow local``
        keeps stdout for the two lines scripts read."""
        stream = self.options.log_stream
        return contextlib.nullcontext() if stream is None else contextlib.redirect_stdout(stream)


def dead_letter_destination(stack: LocalStack) -> Callable[[dict[str, Any]], None] | None:
    """The relay function's on-failure destination (an SQS queue of the template), as a callable."""
    target = stack.function_setting(RELAY_FUNCTION, "EventInvokeConfig", "DestinationConfig", "OnFailure")
    if not isinstance(target, Mapping) or target.get("Type") != "SQS":
        return None
    destination = target.get("Destination")
    logical_id = destination.get("Fn::GetAtt", [None])[0] if isinstance(destination, Mapping) else None
    queue_url = stack.refs.get(str(logical_id))
    if queue_url is None:
        return None
    sqs = boto3.session.Session().client("sqs")

    def park(record: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    return park


def _check_port_free(host: str, port: int) -> None:
    """Raise ``OSError`` at once when ``host:port`` cannot be bound (aiosmtpd reports it only after a time-out)."""
    if port == 0:
        return
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds: TIME_WAIT is no conflict
        probe.bind(address)


def _optional_handler() -> Callable[..., Any] | None:
    """The bounces handler when the code has one (issue 5), else None: simulator events are then only recorded."""
    module_name, _, attribute = BOUNCES_HANDLER.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    handler: Callable[..., Any] | None = getattr(module, attribute, None)
    return handler


def send_logs_to(stream: TextIO) -> None:
    """Point the package's Powertools logger at ``stream`` (it writes to stdout by default, as Lambda wants)."""
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(stream)


def run(options: LocalOptions, announce: Callable[[str], None], stop: threading.Event) -> None:
    """Start a local relay, ``announce`` the export line and the ready line, serve until ``stop`` is set."""
    relay = LocalRelay(options)
    with relay:
        announce(f"export AWS_ENDPOINT_URL={relay.endpoint_url}")
        where = f"smarthost {options.smarthost[0]}:{options.smarthost[1]}" if options.smarthost else \
            f"mailbox={relay.mailbox}"
        announce(f"emailflow local ready: smtp={relay.smtp_host}:{relay.smtp_port} domain={relay.settings.domain} "
                 f"stack={options.stack_name} {where} api={relay.api_url}")
        while not stop.wait(0.5):
            pass
