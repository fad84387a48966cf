"""How the CLI prints: JSON for scripts (``--json`` on every read command), rich tables and progress for people.

Tables go to stdout at a fixed width when stdout is not a terminal (a pipe, a test runner): rich would otherwise
fold every row to 80 columns and cut addresses. Progress goes to stderr and only to a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

_PIPE_WIDTH = 240


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else _PIPE_WIDTH, highlight=False,
                   soft_wrap=not stream.isatty())


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], title: str | None = None) -> None:
    """A plain table (no borders: easy to read and to grep); the first column never wraps."""
    output = Table(*columns, title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                   title_justify="left")
    for index, _ in enumerate(columns):
        output.columns[index].no_wrap = index == 0
    for row in rows:
        output.add_row(*row)
    console().print(output)


def fields(pairs: Iterable[tuple[str, str]]) -> None:
    """``label: value`` lines, aligned (one record: `service show`, `conversation show`)."""
    for label, value in pairs:
        click.echo(f"{label + ':':<24}{value}")


def when(seconds: int | None) -> str:
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextmanager
def progress(description: str, total: int) -> Iterator[Any]:
    """A progress bar on stderr for work that takes time; silent when stderr is not a terminal. Yields a
    function to call once per item done."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console(stderr=True), disable=not sys.stderr.isatty(), transient=True)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
