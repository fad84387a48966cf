"""template.yaml through the SAM transform, offline: what CloudFormation would receive from ``sam deploy``.

aws-sam-translator needs three things to run without an account: a region (``AWS_DEFAULT_REGION``, set by
tests/conftest.py), S3 ``CodeUri``s (a local path is what ``sam build``/``sam package`` replace; here each one becomes
``s3://<bucket>/<path>.zip`` so the output still tells which folder a function's code comes from), and a managed
policy loader that makes no IAM call (the template names no managed policy, so the map stays empty).
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
CODE_BUCKET = "emailflow-offline-artifacts"


class NoIamPolicyLoader:
    """Stands in for samtranslator's ``ManagedPolicyLoader`` (which lists policies with IAM)."""

    def load(self) -> dict[str, str]:
        return {}


def sam_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template as SAM CLI reads it (intrinsics in long form)."""
    document: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return document


def _s3_code_uri(local: str) -> str:
    return f"s3://{CODE_BUCKET}/{local.strip('/')}.zip"


def with_s3_code_uris(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose local ``CodeUri``s (Globals and per function) are S3 URIs naming the same folders."""
    swapped = copy.deepcopy(dict(document))
    function_globals = swapped.get("Globals", {}).get("Function", {})
    if isinstance(function_globals.get("CodeUri"), str):
        function_globals["CodeUri"] = _s3_code_uri(function_globals["CodeUri"])
    for resource in swapped["Resources"].values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = _s3_code_uri(properties["CodeUri"])
    return swapped


@cache
def _translated(path: Path) -> dict[str, Any]:
    output: dict[str, Any] = transform(with_s3_code_uris(sam_template(path)), {}, NoIamPolicyLoader())
    return output


def translated_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of ``path`` (a fresh copy per call)."""
    return copy.deepcopy(_translated(path))


def code_directory(function: Mapping[str, Any]) -> Path:
    """The local folder an ``AWS::Lambda::Function`` of the translated template was built from."""
    key = str(function["Properties"]["Code"]["S3Key"])
    assert function["Properties"]["Code"]["S3Bucket"] == CODE_BUCKET, "code not from a local CodeUri"
    return ROOT / key.removesuffix(".zip")


def import_handler(code_dir: Path, handler: str) -> Callable[..., Any]:
    """Import ``module.attribute`` the way Lambda does: with the function's code folder first on ``sys.path``."""
    module_name, _, attribute = handler.rpartition(".")
    sys.path.insert(0, str(code_dir))
    try:
        module = importlib.import_module(module_name)
    finally:
        sys.path.remove(str(code_dir))
    module_file = Path(str(module.__file__)).resolve()
    assert module_file.is_relative_to(code_dir.resolve()), f"{module_name} imported from {module_file}"
    entry_point: Callable[..., Any] = getattr(module, attribute)
    return entry_point
