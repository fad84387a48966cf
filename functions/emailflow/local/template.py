"""Read ``template.yaml`` (CloudFormation YAML with short-form intrinsic tags) and resolve the few intrinsics that
environment variables and resource properties use. The template is the one source of truth for table keys,
bucket and function settings: local mode and tests build their resources from it, never from a second copy."""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from pathlib import Path
from typing import Any

import yaml

_INTRINSICS = ("Ref", "Sub", "GetAtt", "Join", "If", "Equals", "Not", "And", "Or", "Select", "Split", "FindInMap",
               "ImportValue", "Base64", "Condition", "GetAZs", "Cidr", "Length", "ToJsonString")


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!Ref x`` as ``{"Ref": "x"}`` and ``!Sub s`` as ``{"Fn::Sub": s}`` and so on."""


def _constructor(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if tag == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {"Ref": value} if tag in ("Ref", "Condition") else {f"Fn::{tag}": value}

    return construct


for _tag in _INTRINSICS:
    _CloudFormationLoader.add_constructor(f"!{_tag}", _constructor(_tag))


def default_template_path() -> Path:
    """``template.yaml`` at the project root (this file is functions/emailflow/local/template.py)."""
    return Path(__file__).resolve().parents[3] / "template.yaml"


def load_template(path: Path | None = None) -> dict[str, Any]:
    with (path or default_template_path()).open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    return document


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template.get("Resources", {}).items()
            if resource.get("Type") == resource_type}


def globals_environment(template: Mapping[str, Any]) -> dict[str, str]:
    """The environment ``Globals.Function`` gives every function (literal values only: no resource is needed)."""
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(value) for name, value in variables.items() if isinstance(value, (str, int, float))}


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec}


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def condition_truth(expression: Any, condition: Callable[[str], bool], value: Callable[[Any], Any],
                    names: Container[str]) -> bool:
    """A ``Conditions`` expression (Fn::Equals, Not, And, Or, Condition) evaluated with ``value`` for its operands
    and ``condition`` for named conditions (``names``: the YAML loader reads ``!Condition x`` as a Ref to x)."""
    if not isinstance(expression, Mapping) or len(expression) != 1:
        raise ValueError(f"cannot evaluate condition {expression!r}")
    (function, argument), = expression.items()
    if function == "Condition" or (function == "Ref" and argument in names):
        return condition(argument)
    if function == "Fn::Equals":
        left, right = (value(item) for item in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not condition_truth(argument[0], condition, value, names)
    if function == "Fn::And":
        return all(condition_truth(item, condition, value, names) for item in argument)
    if function == "Fn::Or":
        return any(condition_truth(item, condition, value, names) for item in argument)
    raise ValueError(f"cannot evaluate condition function {function}")


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::If (with the template's Conditions) against known
    values."""

    def __init__(self, refs: Mapping[str, str], attributes: Mapping[str, str],
                 conditions: Mapping[str, Any] | None = None) -> None:
        self._refs = refs
        self._attributes = attributes
        """``"Logical.Attribute"`` -> value."""
        self._conditions = conditions or {}
        """The template's ``Conditions`` section, evaluated on demand."""

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            raise KeyError(f"template names condition {name}, which it does not declare")
        return self._truth(self._conditions[name])

    def _truth(self, expression: Any) -> bool:
        return condition_truth(expression, self.condition, self.resolve, self._conditions)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, Mapping) or len(value) != 1:
            if isinstance(value, Mapping):
                return {key: self.resolve(item) for key, item in value.items()}
            raise ValueError(f"cannot resolve {value!r}")
        (function, argument), = value.items()
        if function == "Ref":
            return self._lookup_ref(argument)
        if function == "Fn::GetAtt":
            return self._lookup_attribute(".".join(argument))
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            extra = {name: self.resolve(item) for name, item in variables.items()}
            return _SUB_VARIABLE.sub(lambda match: extra.get(match[1]) or self._sub_variable(match[1]), text)
        if function == "Fn::If":
            name, when_true, when_false = argument
            return self.resolve(when_true if self.condition(name) else when_false)
        if function == "Fn::Join":
            separator, items = argument
            return str(separator).join(self.resolve(item) for item in items)
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub_variable(self, name: str) -> str:
        return self._lookup_attribute(name) if "." in name else self._lookup_ref(name)

    def _lookup_ref(self, name: str) -> str:
        if name not in self._refs:
            raise KeyError(f"template refers to {name}, which local mode does not create")
        return self._refs[name]

    def _lookup_attribute(self, name: str) -> str:
        if name not in self._attributes:
            raise KeyError(f"template reads attribute {name}, which local mode does not provide")
        return self._attributes[name]
