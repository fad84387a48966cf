"""``benchmarks/results.json``: one file, many benchmarks. Each benchmark owns its keys and merges them in, so that
running one benchmark never drops another's figures."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


def merge_results(path: Path, updates: Mapping[str, Any]) -> None:
    """Replace the top-level keys in ``updates`` and keep every other key; written atomically."""
    document: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            loaded = {}
        if isinstance(loaded, dict):
            document = loaded
    document.update(updates)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def environment() -> dict[str, Any]:
    """Where a figure was measured."""
    import os

    return {"python_version": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
