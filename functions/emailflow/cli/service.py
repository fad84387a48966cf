"""``emailflow service ...``: register services and manage them, through the Python client (``emailflow.Relay``)."""

from __future__ import annotations

from collections.abc import Mapping

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.cli.output import echo_json, fields, table, when
from emailflow.client import ServiceInfo


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        pairs[key.strip()] = text
    return pairs


def _context_text(context: Mapping[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(context.items()))


_CONTEXT = click.option("--context", "context", multiple=True, callback=_key_values, metavar="KEY=VALUE",
                        help="Marketplace context stored with the service, e.g. listing=4711 (repeatable).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def service() -> None:
    """Register and manage services: the owners, sellers or employers users write to."""


@service.command("add")
@click.argument("owner_emails", nargs=-1, required=True, metavar="OWNER_EMAIL...")
@click.option("--name", required=True, help="What users see the service as (\"NAME via <brand>\").")
@_CONTEXT
@click.option("--idempotency-key", default=None, metavar="KEY",
              help="Run the command again with the same KEY and get the same service, not a second one.")
@_JSON
@click.pass_obj
def add(obj: CliContext, owner_emails: tuple[str, ...], name: str, context: dict[str, str] | None,
        idempotency_key: str | None, as_json: bool) -> None:
    """Register a service whose mail goes to the first OWNER_EMAIL (every one listed may answer); prints its
    public relay address alone on one line."""
    relay = obj.relay()
    with reported_errors():
        created = relay.create_service(list(owner_emails), name, context, idempotency_key=idempotency_key)
    if as_json:
        echo_json(created.as_dict())
    else:
        click.echo(created.address)


@service.command("list")
@_JSON
@click.pass_obj
def list_services(obj: CliContext, as_json: bool) -> None:
    """Every service: relay address, status, name and context, oldest first."""
    relay = obj.relay()
    with reported_errors():
        services = relay.list_services()
    if as_json:
        echo_json([item.as_dict() for item in services])
        return
    if not services:
        click.echo("no services yet (emailflow service add OWNER_EMAIL --name NAME)", err=True)
        return
    table(["address", "status", "name", "context"],
          [[item.address, item.status, item.name, _context_text(item.context)] for item in services])


def _show(relay_info: ServiceInfo, conversations: int) -> None:
    fields([("address", relay_info.address), ("code", relay_info.code), ("name", relay_info.name),
            ("status", relay_info.status), ("real addresses", ", ".join(relay_info.addresses)),
            ("undeliverable", ", ".join(f"{address} ({why})" for address, why in relay_info.undeliverable.items())
             or "-"),
            ("context", _context_text(relay_info.context) or "-"), ("created", when(relay_info.created_at)),
            ("conversations", str(conversations))])


@service.command("show")
@click.argument("code_or_address")
@_JSON
@click.pass_obj
def show(obj: CliContext, code_or_address: str, as_json: bool) -> None:
    """Everything stored about one service, and how many conversations it has."""
    relay = obj.relay()
    with reported_errors():
        found = relay.get_service(code_or_address)
        conversations = len(relay.store.list_pairs(found.code))
    if as_json:
        echo_json({**found.as_dict(), "conversations": conversations})
    else:
        _show(found, conversations)


@service.command("update")
@click.argument("code_or_address")
@click.option("--address", "addresses", multiple=True, metavar="EMAIL",
              help="The service's real addresses, replacing the current ones; the first receives mail (repeatable).")
@click.option("--name", default=None, help="A new display name.")
@_CONTEXT
@_JSON
@click.pass_obj
def update(obj: CliContext, code_or_address: str, addresses: tuple[str, ...], name: str | None,
           context: dict[str, str] | None, as_json: bool) -> None:
    """Change a service's real addresses, name or context (what is not given stays). Its relay address and its
    conversations stay the same."""
    if not addresses and name is None and context is None:
        raise click.UsageError("nothing to change: give --address, --name or --context")
    relay = obj.relay()
    with reported_errors():
        updated = relay.update_service(code_or_address, addresses=list(addresses) or None, name=name,
                                       context=context)
    if as_json:
        echo_json(updated.as_dict())
    else:
        click.echo(f"{updated.address} updated")


def _set_status(obj: CliContext, code_or_address: str, active: bool) -> None:
    relay = obj.relay()
    with reported_errors():
        updated = relay.enable_service(code_or_address) if active else relay.disable_service(code_or_address)
    click.echo(f"{updated.address} {updated.status}")


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
