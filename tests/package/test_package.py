"""The artefact Lambda runs (``make package``: build/<LogicalId>/), imported in a fresh Python 3.13 that sees only the
standard library and that folder: nothing dev-only leaked in, nothing the handlers need is missing.

Run by ``make package-test`` after ``make package`` (it needs the package registry, so ``make test`` stays
offline). Skipped, with the reason, when no Python 3.13 interpreter is found (set ``PYTHON313`` to point at one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from infra.package import find_python
from tests.support.aws_calls import code_path
from tests.support.sam import ROOT

pytestmark = pytest.mark.package

BUILD = Path(os.environ.get("EMAILFLOW_BUILD_DIR") or ROOT / "build")
"""``make package``'s output; ``EMAILFLOW_BUILD_DIR=.aws-sam/build`` tries what ``sam build`` made instead."""
DEV_ONLY = ("moto", "click", "flask", "werkzeug", "jinja2", "yaml", "aiosmtpd", "pytest", "hypothesis", "mypy",
            "ruff", "cfnlint", "samtranslator", "docker", "responses", "boto3_stubs", "mypy_boto3_s3")
"""Packages of requirements/dev.txt (and what they pull in) that must not be importable from the artefact."""
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
"""What the Lambda Python runtime itself provides; stood in for by the relay's own pinned copies."""

PROBE = r"""
import importlib, importlib.util, json, sys, sysconfig
folders, modules, services, forbidden = json.loads(sys.argv[1])
sys.path[:0] = folders
for name in modules:
    importlib.import_module(name)
entry = json.loads(sys.argv[2])
handler = getattr(importlib.import_module(entry[0]), entry[1])
clients = []
if services:
    import boto3
    clients = [type(boto3.client(s, region_name="us-east-1")).__name__ for s in services]
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
origins = sorted({m.__name__.split(".")[0] for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and not m.__file__.startswith((*folders, *stdlib))})
print(json.dumps({"version": list(sys.version_info[:2]), "callable": callable(handler), "clients": clients,
                  "found": [n for n in forbidden if importlib.util.find_spec(n) is not None],
                  "outside": origins, "path": sys.path}))
"""


@pytest.fixture(scope="module")
def interpreter() -> tuple[str, dict[str, str]]:
    found = find_python("3.13")
    if found is None:
        pytest.skip("no Python 3.13 interpreter (python3.13 on PATH or PYTHON313): the artefact cannot be tried")
    return found


@pytest.fixture(scope="module")
def built_template() -> dict[str, Any]:
    template_file = BUILD / "template.yaml"
    if not template_file.is_file():
        pytest.fail("build/ is missing: run `make package` first (`make package-test` does both)")
    document: dict[str, Any] = yaml_parse(template_file.read_text(encoding="utf-8"))
    return document


def _functions(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            yield name, resource["Properties"]


def _source_folders() -> dict[str, Path]:
    """Logical id -> the source folder (``CodeUri`` in template.yaml, the function's own or the global one)."""
    source = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    default = source.get("Globals", {}).get("Function", {}).get("CodeUri")
    return {name: ROOT / str(properties.get("CodeUri", default)) for name, properties in _functions(source)}


def _runtime_stand_in(tmp_path: Path) -> Path:
    """boto3 and its dependencies, as the Lambda runtime would provide them, from the relay's pinned copies."""
    folder = tmp_path / "lambda-runtime"
    folder.mkdir(parents=True)
    for name in RUNTIME_PROVIDED:
        source = BUILD / "RelayFunction" / name
        target = folder / name
        if source.is_dir():
            target.symlink_to(source, target_is_directory=True)
        else:
            (folder / f"{name}.py").symlink_to(BUILD / "RelayFunction" / f"{name}.py")
    return folder


def _probe(interpreter: tuple[str, dict[str, str]], folders: list[Path], handler: str, modules: list[str],
           services: list[str]) -> dict[str, Any]:
    executable, env = interpreter
    module, _, attribute = handler.rpartition(".")
    arguments = json.dumps([[str(folder) for folder in folders], modules, services, list(DEV_ONLY)])
    # -I: no PYTHON* variables, no user site, script folder not on the path; -S: no site-packages at all;
    # -B: leave the artefact as built (no __pycache__ written into it).
    command = [executable, "-I", "-S", "-B", "-c", PROBE, arguments, json.dumps([module, attribute])]
    result = subprocess.run(command,  # noqa: S603 - the located Python 3.13 and our own probe
                            capture_output=True, text=True, env={**env, "POWERTOOLS_SERVICE_NAME": "emailflow",
                                                                 "POWERTOOLS_METRICS_NAMESPACE": "emailflow"},
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_package_every_handler_imports_from_its_folder_alone(
        interpreter: tuple[str, dict[str, str]], built_template: dict[str, Any], tmp_path: Path) -> None:
    functions = dict(_functions(built_template))
    assert {"RelayFunction", "BouncesFunction", "ApiFunction", "ApprovalFunction", "DownloadFunction",
            "RuleSetActivatorFunction"} <= set(functions)
    sources = _source_folders()
    for name, properties in functions.items():
        # Given a function's built folder (plus the runtime's boto3 when the function packages none)
        folder = BUILD / properties["CodeUri"]
        packaged = (folder / "boto3").is_dir()
        folders = [folder] if packaged else [folder, _runtime_stand_in(tmp_path / name)]
        path = code_path(sources[name], properties["Handler"])
        services = sorted(path.services)

        # When every module of its code path and its handler are imported in a fresh Python 3.13, clients created
        answer = _probe(interpreter, folders, properties["Handler"], sorted(path.modules), services)

        # Then it works with nothing but the standard library and those folders; no dev-only package is there
        assert answer["version"] == [3, 13]
        assert answer["callable"], name
        assert answer["outside"] == [], f"{name} imported from outside its folder: {answer['outside']}"
        assert answer["found"] == [], f"{name}: dev-only packages importable: {answer['found']}"
        assert len(answer["clients"]) == len(services), name


def test_package_relay_holds_exactly_the_pinned_runtime_dependencies(built_template: dict[str, Any]) -> None:
    # Given the distributions installed into the relay's folder and the runtime pins
    folder = BUILD / "RelayFunction"
    installed = {_normalise(match[1]): match[2] for dist in folder.glob("*.dist-info")
                 if (match := re.fullmatch(r"(.+)-([^-]+)\.dist-info", dist.name))}
    pins = {_normalise(name): version for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#") for name, version in [line.strip().split("==")]}

    # Then they are the same, version for version: nothing extra, nothing missing
    assert installed == pins


def test_package_ships_bytecode_for_the_runtime_that_never_checks_the_source() -> None:
    # Given the relay's built folder
    folder = BUILD / "RelayFunction"
    sources = [path for path in folder.rglob("*.py") if "__pycache__" not in path.parts]
    assert len(sources) > 100

    # Then every module has its Python 3.13 bytecode beside it, hash-based and unchecked (flags 0b01: Lambda's
    # read-only code directory is never compiled into, and no source timestamp is compared on import)
    missing, checked = [], []
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not compiled.is_file():
            missing.append(str(source.relative_to(folder)))
        elif int.from_bytes(compiled.read_bytes()[4:8], "little") != 0b01:
            checked.append(str(compiled.relative_to(folder)))
    assert (missing, checked) == ([], [])


def test_package_has_no_compiled_extensions() -> None:
    # Given the built folders, Then they are pure Python, so importing them on this (x86_64) machine proves what the
    # arm64 Lambda would import; a compiled dependency would need this check on arm64 instead
    assert not [str(path.relative_to(BUILD)) for path in BUILD.rglob("*.so")]


def test_package_template_points_each_function_at_its_folder(built_template: dict[str, Any]) -> None:
    # Given the built template and the source template
    source = yaml_parse((ROOT / "template.yaml").read_text(encoding="utf-8"))
    for name, properties in _functions(built_template):
        # Then each function's code is its built folder
        assert properties["CodeUri"].rstrip("/") == name
        assert (BUILD / name).is_dir()

    # And apart from where the code is (and SAM CLI's own resource metadata), nothing changed
    assert _without_code_locations(built_template) == _without_code_locations(source)


def _without_code_locations(template: dict[str, Any]) -> dict[str, Any]:
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for _, properties in _functions(template):
        properties.pop("CodeUri", None)
    for resource in template["Resources"].values():
        resource.get("Metadata", {}).pop("SamResourceId", None)
        if resource.get("Metadata") == {}:
            del resource["Metadata"]
    return template


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
