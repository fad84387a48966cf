"""The design docs name every rule and reason the code has (docs drift silently otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

from emailflow.local.template import load_template
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


def test_docs_deploy_describes_every_template_parameter() -> None:
    # Given the deploy guide and the template, Then every parameter is in the guide's table
    text = (DOCS / "deploy.md").read_text()
    for parameter in load_template()["Parameters"]:
        assert f"`{parameter}`" in text, parameter


def test_docs_deploy_reads_only_outputs_the_template_has() -> None:
    # Given the outputs the deploy guide's commands read (`out <Key>` and OutputKey=='<Key>'), Then each exists
    text = (DOCS / "deploy.md").read_text()
    named = set(re.findall(r"\bout (\w+)", text)) | set(re.findall(r"OutputKey=='(\w+)'", text))
    assert named
    assert named <= set(load_template()["Outputs"])
