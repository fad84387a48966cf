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

Unlike ``sam build``, each folder then ships its bytecode, compiled by an interpreter of the function's runtime
version (``python3.13`` on the PATH, or ``PYTHON313``) with ``--invalidation-mode unchecked-hash``: Lambda's code
directory is read-only, so a package without ``__pycache__`` compiles every module it imports on every cold start
(30-110 ms measured for the relay, benchmarks/README.md), and unchecked hashes spare even the source timestamp
checks. Without such an interpreter the build says so and ships source only (it still works, cold starts cost more).
"""

from __future__ import annotations

import argparse
import copy
import os
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


def find_python(version: str) -> tuple[str, dict[str, str]] | None:
    """An interpreter of ``version`` ("3.13": ``PYTHON313`` or ``python3.13`` on the PATH; its real path, not a
    shim) and the environment to start it with, or None."""
    candidate = os.environ.get(f"PYTHON{version.replace('.', '')}") or shutil.which(f"python{version}")
    if candidate is None:
        return None
    env = {"PATH": os.environ.get("PATH", "")}
    if shutil.which("pyenv") and "PYENV_VERSION" not in os.environ:
        versions = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True,  # noqa: S607
                                  check=False).stdout.split()
        env["PYENV_VERSION"] = next((found for found in versions if found.startswith(version)), "")
    elif "PYENV_VERSION" in os.environ:
        env["PYENV_VERSION"] = os.environ["PYENV_VERSION"]
    major, minor = version.split(".")
    probe = f"import sys; print(sys.version_info[:2] == ({major}, {minor}), sys.executable)"
    result = subprocess.run([candidate, "-c", probe],  # noqa: S603 - the interpreter the developer has
                            capture_output=True, text=True, env=env, check=False)
    answer = result.stdout.split()
    if result.returncode != 0 or answer[:1] != ["True"]:
        return None
    return answer[1], env


def compile_bytecode(folder: Path, runtime: str) -> bool:
    """Compile every module of ``folder`` for ``runtime`` (unchecked-hash .pyc files); False: no interpreter of
    that version here, nothing compiled."""
    interpreter = find_python(runtime.removeprefix("python"))
    if interpreter is None:
        return False
    executable, env = interpreter
    subprocess.run([executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",  # noqa: S603
                    str(folder)], check=True, env=env, stdout=subprocess.DEVNULL)
    return True


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
    runtime = str(properties["Runtime"])
    if not compile_bytecode(target, runtime):
        print(f"{name}: no {runtime} interpreter here (on the PATH, or named by PYTHON3xx): shipped without "
              "bytecode, so every cold start compiles it")
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
