"""``emailflow stats``: reply rate and response time per service, from the pairs in DynamoDB (docs/stats.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from emailflow.cli.context import CliContext, reported_errors
from emailflow.cli.output import table
from emailflow.services import find_service, service_address
from emailflow.stats import ServiceStats, service_stats, top_services

_DAY = 86_400


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * _DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / _DAY:.1f} d"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@click.command("stats")
@click.argument("service_ref", required=False, metavar="[SERVICE]")
@click.option("--top", "top", default=10, show_default=True, help="How many services (busiest first).")
@click.option("--days", type=click.IntRange(min=1), default=None, help="Only conversations started in the last N days.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw reply rate and the first-response distribution into this PNG (needs matplotlib).")
@click.pass_obj
def stats(obj: CliContext, service_ref: str | None, top: int, days: int | None, as_json: bool,
          plot: Path | None) -> None:
    """Conversations, reply rate, median and p90 first-response time, pending conversations, deliveries: for one
    SERVICE (code or relay address) or the busiest services. One DynamoDB Query per service, never a table scan."""
    ops = obj.operations()
    now = int(time.time())
    since = now - days * _DAY if days else None
    with reported_errors():
        services = [find_service(ops.directory, ops.addressing, ops.codebook, service_ref)] if service_ref else \
            ops.directory.list_services()
        pairs = {item.code: ops.directory.list_pairs(item.code) for item in services}  # one Query each
    figures = [service_stats(code, service_pairs, now, since=since) for code, service_pairs in pairs.items()]
    responses = {code: [pair.first_reply_at - pair.started_at for pair in service_pairs
                        if pair.first_reply_at is not None and (since is None or pair.started_at >= since)]
                 for code, service_pairs in pairs.items()}
    names = {item.code: item.display_name for item in services}
    addresses = {item.code: service_address(ops.addressing, item) for item in services}
    chosen = top_services(figures, top)
    if as_json:
        click.echo(json.dumps([{**item.as_dict(), "address": addresses[item.service_code],
                                "name": names[item.service_code]} for item in chosen], indent=2))
    else:
        _table(chosen, names, addresses)
    if plot is not None:
        _plot(chosen, names, responses, plot)
        click.echo(f"plot written to {plot}", err=True)


def _table(rows: list[ServiceStats], names: dict[str, str], addresses: dict[str, str]) -> None:
    table(["service", "name", "conv", "replied", "rate", "pending", "median", "p90", "auto", "delivered", "contact"],
          [[addresses[row.service_code], names[row.service_code][:20], str(row.conversations), str(row.replied),
            _rate(row.reply_rate), str(row.pending), _duration(row.first_response_median),
            _duration(row.first_response_p90), str(row.auto_replies), str(row.delivered), str(row.contact_details)]
           for row in rows])


def _plot(rows: list[ServiceStats], names: dict[str, str], responses: dict[str, list[int]], path: Path) -> None:
    try:
        import matplotlib as mpl  # optional extra, loaded only for --plot

        mpl.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise click.ClickException("--plot needs matplotlib: pip install 'emailflow[plot]'") from exc
    figure, (rates, times) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [names[row.service_code][:18] for row in rows]
    rates.barh(labels, [100 * (row.reply_rate or 0.0) for row in rows], color="#2b7bb9")
    rates.set_xlim(0, 100)
    rates.set_xlabel("reply rate (%)")
    rates.invert_yaxis()
    rates.set_title("Reply rate per service")
    hours = [[seconds / 3600 for seconds in responses.get(row.service_code, [])] for row in rows]
    if any(hours):
        times.boxplot([values or [0.0] for values in hours], orientation="horizontal", tick_labels=labels)
        times.invert_yaxis()
    times.set_xlabel("first response (hours)")
    times.set_title("First-response time distribution")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
