"""``emailflow doctor``: can the deployed relay receive and send? Every check and its fix is in ``emailflow.doctor``."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.config import local_endpoint, use_local_emulator_defaults
from emailflow.doctor import Check, Deployment, Status, deployment_from_outputs, diagnose, failed

_LABELS = {Status.OK: ("ok", "green"), Status.WARN: ("WARN", "yellow"), Status.FAIL: ("FAIL", "red")}


class NameServer(click.ParamType[tuple[str, int]]):
    """``ADDRESS[:PORT]`` of a DNS server: ``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::53``, ``[::1]:5353``."""

    name = "ADDRESS[:PORT]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        address, port = text, "53"
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif text.count(":") == 1:
            address, port = text.split(":")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            self.fail(f"{value!r} is not an IP address with an optional :PORT", param, ctx)
        if not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"{value!r}: the port must be 1-65535", param, ctx)
        return address, int(port)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--nameserver", "nameservers", type=NameServer(), multiple=True,
              help="Ask this DNS server instead of the system's, e.g. the domain's authoritative one (repeatable).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, nameservers: Sequence[tuple[str, int]]) -> None:
    """Check the deployed stack: the active receipt rule set and the relay's rule, the domain identity (verified,
    DKIM), SES production access and sending, the DNS records the stack's outputs ask for, the configuration set's
    event destination and the dead-letter queue.

    Prints each check as ok, WARN or FAIL, and under each one that is not ok exactly what to do. Exits 1 if any
    check failed (warnings do not count).
    """
    # boto3 and dnspython load only when the command runs: `emailflow --help` stays quick.
    from emailflow.adapters.cloudformation import stack_outputs
    from emailflow.adapters.deployment import AwsDeploymentProbe
    from emailflow.adapters.dns_lookup import DnsPythonResolver

    obj: CliContext = ctx.obj
    use_local_emulator_defaults()
    probe = AwsDeploymentProbe()
    with reported_errors():
        outputs = stack_outputs(obj.stack_name)
        if local_endpoint() and "ReceiptRuleName" not in outputs:
            raise click.ClickException("emailflow doctor checks a deployed stack: local mode has no receipt rule, "
                                       "domain verification or DNS records to check (see docs/local.md)")
        deployment = deployment_from_outputs(obj.stack_name, probe.region, outputs)
    checks = diagnose(deployment, probe, DnsPythonResolver(nameservers))
    if as_json:
        click.echo(json.dumps({"stack": deployment.stack_name, "region": deployment.region,
                               "domain": deployment.domain, "healthy": not failed(checks),
                               "checks": [check.as_dict() for check in checks]}, indent=2))
    else:
        _report(deployment, checks)
    if failed(checks):
        ctx.exit(1)


def _report(deployment: Deployment, checks: Sequence[Check]) -> None:
    click.echo(f"emailflow doctor: stack {deployment.stack_name}, {deployment.domain} in {deployment.region}\n")
    width = max(len(check.name) for check in checks)
    for check in checks:
        label, colour = _LABELS[check.status]
        click.echo(f"{click.style(f'{label:<4}', fg=colour, bold=check.status is not Status.OK)}  "
                   f"{check.name:<{width}}  {check.detail}")
        for number, line in enumerate(check.fix.splitlines()):
            click.echo(f"{'':<{width + 8}}{'fix: ' if number == 0 else '     '}{line}")
    counts = {status: sum(check.status is status for check in checks) for status in Status}
    click.echo(f"\n{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed")
