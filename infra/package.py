"""Build what Lambda runs, the way ``sam build`` would, without Docker or SAM CLI: ``make package``.

For every function of template.yaml (``CodeUri`` from the function or from ``Globals``):

- ``build/<LogicalId>/`` = the dependencies of ``<CodeUri>/requirements.txt`` (when there is one) installed for the
  function's runtime and architecture (``python3.13`` + ``arm64`` -> CPython 3.13 wheels for
  ``manylinux2014_aarch64``; wheels only, so nothing is compiled for this machine), then a copy of ``<CodeUri>``
  without caches and build litter (the files ``sam build`` leaves out);
- ``build/template.yaml`` = template.yaml with each function's ``CodeUri`` pointing at its folder, so that
  ``sam deploy --template-file build/template.yaml --guided`` uploads exactly this (docs/deploy.md).

A function without requirements.txt (the rule-set activator) uses only the standard library and the boto3 that the
Lambda runtime provides. ``make package-test`` imports every handler from these folders in a fresh Python 3.13.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
EXCLUDED = ("__pycache__", "*.pyc", "*.so", "*.egg-info", ".mypy_cache", ".pytest_cache", ".ruff_cache",
            ".hypothesis", ".venv", ".aws-sam", ".git", ".gitignore", ".DS_Store")
"""Left out of the copied code, as aws-lambda-builders' python_pip workflow leaves them out."""


def functions(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> the function's properties with ``Globals.Function`` merged in (the function's own win)."""
    function_globals = template.get("Globals", {}).get("Function", {})
    return {name: {**function_globals, **resource.get("Properties", {})}
            for name, resource in template["Resources"].items() if resource["Type"] == "AWS::Serverless::Function"}


def pip_command(requirements: Path, target: Path, runtime: str, architecture: str) -> list[str]:
    version = runtime.removeprefix("python")
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(target), "--platform", PLATFORMS[architecture], "--implementation", "cp",
            "--python-version", version, "--only-binary=:all:", "-r", str(requirements)]


def build_function(name: str, properties: Mapping[str, Any], build_dir: Path) -> Path:
    source = ROOT / str(properties["CodeUri"])
    target = build_dir / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    requirements = source / "requirements.txt"
    if requirements.is_file():
        (architecture,) = properties.get("Architectures", ["x86_64"])
        command = pip_command(requirements, target, str(properties["Runtime"]), architecture)
        subprocess.run(command, check=True)  # noqa: S603 - our own pip, arguments from our template
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*EXCLUDED), dirs_exist_ok=True)
    return target


def built_template(template: Mapping[str, Any], built: Mapping[str, Path], build_dir: Path) -> dict[str, Any]:
    """The template with each function's ``CodeUri`` set to its built folder (relative to ``build_dir``)."""
    document = copy.deepcopy(dict(template))
    document.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for name, folder in built.items():
        document["Resources"][name]["Properties"]["CodeUri"] = f"{folder.relative_to(build_dir)}/"
    built_document: dict[str, Any] = document
    return built_document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)
    template = yaml_parse(args.template.read_text(encoding="utf-8"))
    args.build_dir.mkdir(parents=True, exist_ok=True)
    built = {name: build_function(name, properties, args.build_dir)
             for name, properties in functions(template).items()}
    output = args.build_dir / "template.yaml"
    output.write_text(yaml.safe_dump(built_template(template, built, args.build_dir), sort_keys=False),
                      encoding="utf-8")
    for name, folder in built.items():
        print(f"built {name}: {folder}")
    print(f"template: {output} (sam deploy --template-file {output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
