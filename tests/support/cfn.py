"""Evaluate a (translated) CloudFormation template for one set of parameter values, without AWS.

Conditions are decided, ``Fn::If`` picks its branch, ``AWS::NoValue`` disappears, parameters and pseudo parameters
become their values. What only a deployment knows stays symbolic: ``Ref`` of a resource becomes ``{{Name}}`` and
``Fn::GetAtt`` becomes ``{{Name.Attribute}}``, also inside ``Fn::Sub`` strings, so tests can compare wiring
("the rule's bucket is the bucket the function reads") as plain strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emailflow.local.template import condition_truth

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STACK_NAME = "emailflow"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
          "AWS::StackName": STACK_NAME, "AWS::URLSuffix": "amazonaws.com",
          "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/guid"}
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "x-amazon-apigateway-any-method")


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


def ref(name: str) -> str:
    """How a ``Ref`` to a resource reads after evaluation."""
    return "{{" + name + "}}"


def get_att(name: str, attribute: str) -> str:
    """How a ``Fn::GetAtt`` reads after evaluation."""
    return "{{" + f"{name}.{attribute}" + "}}"


class Stack:
    """One evaluation of a template: ``parameters`` override the template's defaults."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> None:
        self.template = template
        declared = template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        assert not unknown, f"not parameters of the template: {unknown}"
        self.parameters = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
        self.parameters.update(parameters or {})
        self._conditions: dict[str, bool] = {}

    # -- conditions and resources ----------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._truth(self.template["Conditions"][name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        return condition_truth(expression, self.condition, self.value, self.template.get("Conditions", {}))

    def exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            return False
        return "Condition" not in resource or self.condition(resource["Condition"])

    def resources(self, resource_type: str | None = None) -> dict[str, dict[str, Any]]:
        """The resources this stack would create (condition true), evaluated; optionally of one type."""
        return {name: self.resource(name) for name, resource in self.template["Resources"].items()
                if self.exists(name) and (resource_type is None or resource["Type"] == resource_type)}

    def resource(self, logical_id: str) -> dict[str, Any]:
        assert self.exists(logical_id), f"{logical_id} is not created with {self.parameters}"
        resource = dict(self.template["Resources"][logical_id])
        resource["Properties"] = self.value(resource.get("Properties", {}))
        return resource

    def api_operations(self, api_id: str) -> dict[str, dict[str, Any]]:
        """Route key (``GET /path``) -> the operation SAM wrote into the OpenAPI body of HTTP API ``api_id``."""
        paths: dict[str, dict[str, Any]] = self.resource(api_id)["Properties"]["Body"]["paths"]
        return {f"{method.upper()} {path}": operation for path, item in paths.items()
                for method, operation in item.items() if method in _HTTP_METHODS}

    def output(self, name: str) -> Any:
        return self.value(self.template["Outputs"][name]["Value"])

    # -- values ----------------------------------------------------------------------------------------------

    def value(self, item: Any) -> Any:
        if isinstance(item, list):
            return [value for value in (self.value(element) for element in item) if value is not NO_VALUE]
        if not isinstance(item, Mapping):
            return item
        if len(item) == 1:
            (key, argument), = item.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return get_att(name, attribute)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.value(when_true if self.condition(condition) else when_false)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, elements = argument
                return str(separator).join(str(value) for value in self.value(elements))
        evaluated = {key: self.value(value) for key, value in item.items()}
        return {key: value for key, value in evaluated.items() if value is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        assert name in self.template["Resources"], f"Ref to unknown {name}"
        return ref(name)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: str(self.value(value)) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match[1]
            if name in local:
                return local[name]
            if "." in name and not name.startswith("AWS::"):
                return get_att(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB.sub(replace, text)
