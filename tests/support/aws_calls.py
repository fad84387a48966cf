"""The AWS API calls a Lambda handler's code path can make, read from the source, and the IAM actions they need.

Nothing here is a hand-written list of calls:

1. **Code path.** From the handler's module, follow the project's imports (not those under ``TYPE_CHECKING``) to the
   modules Lambda would load. From the handler function, follow every name a reachable body mentions to the
   functions and methods of that name in those modules (by name: an over-approximation, so a missed edge cannot hide
   a call; an extra edge would show up as a demanded action the policy lacks).
2. **Clients.** A module uses a service when it calls ``client("<service>")`` / ``_client("<service>")`` with a
   literal, or mentions a function that does (``dynamodb_client`` in the adapters).
3. **Calls.** In a reachable function of such a module, an attribute on a client (``self._client.put_item``,
   ``client.set_active_receipt_rule_set``, ``(client or getter()).get_secret_value``; called or passed on) whose name
   is an operation of the service (botocore's service model, snake case), plus ``get_paginator("op")`` and
   ``generate_presigned_url("op")`` (a presigned URL is signed locally and authorised as ``op`` when used).
4. **IAM.** Action = the model's signing name + the operation name (``sesv2`` ``send_email`` -> ``ses:SendEmail``).
   ``Transact*Items`` has no IAM action of its own: each kind of item the code puts in ``TransactItems`` (the
   literal keys ``Put``/``Update``/``Delete``/``ConditionCheck`` of the service's item shape, found in the calling
   function) needs ``<kind>Item``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name
from botocore.model import ListShape, ServiceModel, StructureShape

_CLIENT_FACTORIES = frozenset({"client", "_client"})
_OPERATION_BY_NAME = frozenset({"get_paginator", "generate_presigned_url", "can_paginate"})


@cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method name -> operation name."""
    return {xform_name(name): name for name in service_model(service).operation_names}


def iam_actions(service: str, operation: str, item_kinds: Iterable[str] = ()) -> set[str]:
    """The IAM actions one call needs (``item_kinds``: the literal item keys used with a ``Transact*Items`` call)."""
    model = service_model(service)
    prefix = model.signing_name
    input_shape = model.operation_model(operation).input_shape
    items = input_shape.members.get("TransactItems") if input_shape is not None else None
    if operation.startswith("Transact") and isinstance(items, ListShape) and isinstance(items.member, StructureShape):
        kinds = set(items.member.members) & set(item_kinds)
        assert kinds, f"{operation} with no recognisable item kind"
        return {f"{prefix}:{kind}Item" for kind in kinds}
    return {f"{prefix}:{operation}"}


@dataclass(frozen=True)
class _Module:
    name: str
    path: Path
    tree: ast.Module


@dataclass(frozen=True)
class _Function:
    module: _Module
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class CodePath:
    """What one handler can reach: modules, functions, and the IAM actions of its AWS calls (with where from)."""

    modules: dict[str, _Module]
    functions: list[_Function]
    actions: dict[str, set[str]] = field(default_factory=dict)
    """IAM action -> ``module.function`` names that need it."""
    services: set[str] = field(default_factory=set)
    """botocore service names the calls go to (``sesv2``, not the IAM prefix ``ses``)."""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk`` that skips ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (grandchild for other in child.orelse for grandchild in [other, *_runtime_nodes(other)])
            continue
        yield child
        yield from _runtime_nodes(child)


def _module_file(name: str, roots: Sequence[Path]) -> Path | None:
    parts = name.split(".")
    for root in roots:
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def _imported_names(module: _Module) -> Iterator[str]:
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in _runtime_nodes(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def import_closure(entry_module: str, roots: Sequence[Path]) -> dict[str, _Module]:
    """The project modules that importing ``entry_module`` loads (parents packages included)."""
    found: dict[str, _Module] = {}
    pending = [entry_module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name, roots)
        if path is None:
            continue  # stdlib or a dependency
        module = _Module(name, path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found[name] = module
        parents = [".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)]
        pending.extend([*parents, *_imported_names(module)])
    return found


def _functions(module: _Module) -> Iterator[_Function]:
    def visit(node: ast.AST, prefix: str) -> Iterator[_Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield _Function(module, f"{prefix}{child.name}", child)
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(module.tree, "")


def _mentioned(node: ast.AST) -> set[str]:
    """Every name a piece of code mentions: variables, attributes, called or not."""
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            names.add(child.id)
        elif isinstance(child, ast.Attribute):
            names.add(child.attr)
    return names


def _module_level_mentions(module: _Module) -> set[str]:
    """Names used by code that runs at import: top-level and class-level statements, decorators, defaults."""
    names: set[str] = set()

    def visit(body: Iterable[ast.stmt]) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for expression in [*statement.decorator_list, *statement.args.defaults]:
                    names.update(_mentioned(expression))
            elif isinstance(statement, ast.ClassDef):
                for expression in [*statement.decorator_list, *statement.bases]:
                    names.update(_mentioned(expression))
                visit(statement.body)
            elif isinstance(statement, ast.If) and _is_type_checking(statement):
                visit(statement.orelse)
            else:
                names.update(_mentioned(statement))

    visit(module.tree.body)
    return names


def _literal_service(call: ast.Call) -> str | None:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else (
        call.func.id if isinstance(call.func, ast.Name) else None)
    if name in _CLIENT_FACTORIES and call.args and isinstance(call.args[0], ast.Constant) and \
            isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _services_by_module(modules: Iterable[_Module]) -> dict[str, set[str]]:
    getters: dict[str, str] = {}
    direct: dict[str, set[str]] = {}
    for module in modules:
        direct[module.name] = set()
        for function in _functions(module):
            for node in ast.walk(function.node):
                if isinstance(node, ast.Call) and (service := _literal_service(node)):
                    getters[function.node.name] = service
                    direct[module.name].add(service)
    return {name: services | {getters[used] for used in _mentioned(module.tree) if used in getters}
            for module in modules for name, services in [(module.name, direct[module.name])]}


def _calls_in(function: _Function, services: set[str]) -> Iterator[tuple[str, str, set[str]]]:
    """(service, operation, item kinds) for every client call in one function's body."""
    item_keys = {key.value for node in ast.walk(function.node) if isinstance(node, ast.Dict)
                 for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}
    for node in ast.walk(function.node):
        operation_name: str | None = None
        if isinstance(node, ast.Attribute) and "client" in ast.unparse(node.value).lower():
            operation_name = node.attr
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in _OPERATION_BY_NAME and node.args and isinstance(node.args[0], ast.Constant):
            operation_name = str(node.args[0].value)
        if operation_name is None:
            continue
        for service in sorted(services):
            operation = _operations(service).get(operation_name)
            if operation is not None:
                yield service, operation, item_keys


def code_path(code_dir: Path, handler: str) -> CodePath:
    """Everything ``handler`` (``module.function``, Lambda's notation) can reach in ``code_dir``."""
    entry_module, _, entry_function = handler.rpartition(".")
    modules = import_closure(entry_module, [code_dir])
    assert entry_module in modules, f"{handler}: module not found under {code_dir}"
    by_name: dict[str, list[_Function]] = {}
    for module in modules.values():
        for function in _functions(module):
            by_name.setdefault(function.node.name, []).append(function)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):  # constructing a class runs its __init__
                by_name.setdefault(node.name, []).extend(
                    function for function in _functions(module) if function.qualname.endswith(
                        (f"{node.name}.__init__", f"{node.name}.__post_init__")))

    pending = [function for function in by_name.get(entry_function, []) if function.module.name == entry_module]
    assert pending, f"{handler}: no function {entry_function} in {entry_module}"
    for module in modules.values():
        pending.extend(function for name in _module_level_mentions(module) for function in by_name.get(name, []))
    reached: dict[tuple[str, str], _Function] = {}
    while pending:
        function = pending.pop()
        key = (function.module.name, function.qualname)
        if key in reached:
            continue
        reached[key] = function
        pending.extend(callee for name in _mentioned(function.node) for callee in by_name.get(name, []))

    services = _services_by_module(modules.values())
    path = CodePath(modules=modules, functions=list(reached.values()))
    for function in path.functions:
        for service, operation, item_kinds in _calls_in(function, services[function.module.name]):
            path.services.add(service)
            for action in iam_actions(service, operation, item_kinds):
                path.actions.setdefault(action, set()).add(f"{function.module.name}.{function.qualname}")
    return path
