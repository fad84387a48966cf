"""``emailflow service ...``: register services and manage them. Every rule is in ``emailflow.services``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.model import ServiceStatus
from emailflow.services import find_service, register_service, service_address, set_service_status


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        pairs[key.strip()] = text
    return pairs


def _context_text(context: Mapping[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(context.items()))


@click.group()
def service() -> None:
    """Register and manage services: the owners, sellers or employers users write to."""


@service.command("add")
@click.argument("owner_email")
@click.option("--name", required=True, help="What users see the service as (\"NAME via <brand>\").")
@click.option("--context", "context", multiple=True, callback=_key_values, metavar="KEY=VALUE",
              help="Marketplace context stored with the service, e.g. listing=4711 (repeatable).")
@click.pass_obj
def add(obj: CliContext, owner_email: str, name: str, context: dict[str, str]) -> None:
    """Register a service whose mail goes to OWNER_EMAIL; prints its public relay address alone on one line."""
    ops = obj.operations()
    with reported_errors():
        registered = register_service(ops.directory, ops.codebook, [owner_email], name, context,
                                      relay_domain=ops.settings.domain)
    click.echo(service_address(ops.addressing, registered))


@service.command("list")
@click.pass_obj
def list_services(obj: CliContext) -> None:
    """Every service: relay address, status, name and context, oldest first."""
    ops = obj.operations()
    with reported_errors():
        services = ops.directory.list_services()
    if not services:
        click.echo("no services yet (emailflow service add OWNER_EMAIL --name NAME)", err=True)
    for registered in services:
        click.echo(f"{service_address(ops.addressing, registered)}  {registered.status.value:<8}  "
                   f"{registered.display_name}  {_context_text(registered.context)}".rstrip())


@service.command("show")
@click.argument("code_or_address")
@click.pass_obj
def show(obj: CliContext, code_or_address: str) -> None:
    """Everything stored about one service, and how many conversations it has."""
    ops = obj.operations()
    with reported_errors():
        found = find_service(ops.directory, ops.addressing, ops.codebook, code_or_address)
        conversations = len(ops.directory.list_pairs(found.code))
    created = datetime.fromtimestamp(found.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    for label, value in (("address", service_address(ops.addressing, found)), ("code", found.code),
                         ("name", found.display_name), ("status", found.status.value),
                         ("real addresses", ", ".join(found.addresses)),
                         ("context", _context_text(found.context) or "-"), ("created", created),
                         ("conversations", str(conversations))):
        click.echo(f"{label + ':':<16}{value}")


def _set_status(obj: CliContext, code_or_address: str, active: bool) -> None:
    ops = obj.operations()
    with reported_errors():
        found = find_service(ops.directory, ops.addressing, ops.codebook, code_or_address)
        updated = set_service_status(ops.directory, found.code,
                                     ServiceStatus.ACTIVE if active else ServiceStatus.DISABLED)
    click.echo(f"{service_address(ops.addressing, updated)} {updated.status.value}")


@service.command("disable")
@click.argument("code_or_address")
@click.pass_obj
def disable(obj: CliContext, code_or_address: str) -> None:
    """Stop relaying mail to a service (users who write get the relay's error mail)."""
    _set_status(obj, code_or_address, active=False)


@service.command("enable")
@click.argument("code_or_address")
@click.pass_obj
def enable(obj: CliContext, code_or_address: str) -> None:
    """Relay mail to a disabled service again."""
    _set_status(obj, code_or_address, active=True)
