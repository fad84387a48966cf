"""The design docs name every rule and reason the code has (docs drift silently otherwise)."""

from __future__ import annotations

from pathlib import Path

from emailflow.outcomes import Reason
from emailflow.rewrite import HEADER_RULES

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_rewrite_lists_every_header_rule() -> None:
    # Given the rewrite design doc, Then every field of the rule table is documented
    text = (DOCS / "rewrite.md").read_text().lower()
    for field in HEADER_RULES:
        assert f"`{field}`" in text, field


def test_docs_outcomes_lists_every_reason() -> None:
    # Given the outcomes doc, Then every reason code appears in it
    text = (DOCS / "outcomes.md").read_text()
    for reason in Reason:
        assert f"`{reason.value}`" in text, reason
