"""Reads template.yaml and resolves its intrinsic functions, so the local stack builds its
resources, environment and state machine substitutions from the same file AWS deploys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
_SUB = re.compile(r"\$\{([^}!]+)\}")
NO_VALUE = object()


def load_template(path: Path = TEMPLATE) -> dict:
    return cfn_yaml.loads(path.read_text(), str(path))


class Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Sub, Fn::Select, Fn::Split, Fn::Join, the condition
    functions (Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) and the Rules' Fn::Contains
    against parameter values and the physical ids the local stack gave resources. Any other
    intrinsic is refused rather than passed on as a mapping, which a condition would read as true.
    Parameter values are checked against their constraints and the template's Rules first."""

    def __init__(self, template: dict, parameters: dict[str, Any], stack_name: str = "zimage-local"):
        self.template = template
        self.parameters = {
            name: parameters.get(name, spec.get("Default")) for name, spec in template.get("Parameters", {}).items()
        }
        missing = [name for name, value in self.parameters.items() if value is None]
        if missing:
            raise ValueError(f"template parameters without a value: {missing}")
        unknown = sorted(set(parameters) - set(self.parameters))
        if unknown:
            raise ValueError(f"the template has no parameters {unknown}")
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.refs: dict[str, str] = {}  # logical id -> what !Ref gives
        self.attributes: dict[tuple[str, str], str] = {}  # (logical id, attribute) -> value
        self._check_parameters()

    def _check_parameters(self) -> None:
        """Refuse what CloudFormation refuses before it creates anything: a value outside its
        parameter's AllowedValues, MinValue/MaxValue or AllowedPattern, and a broken Rule."""
        problems = []
        for name, spec in self.template.get("Parameters", {}).items():
            value = self.parameters[name]
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in {str(v) for v in allowed}:
                problems.append(f"{name}={value} is not one of {allowed}")
            if spec.get("Type") == "Number":
                number = float(value)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problems.append(f"{name}={value} is below {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problems.append(f"{name}={value} is above {spec['MaxValue']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], str(value)):
                problems.append(f"{name}={value!r} does not match {spec['AllowedPattern']}")
        for rule_name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.resolve(assertion["Assert"]):
                    problems.append(f"{rule_name}: {assertion.get('AssertDescription', 'refused')}")
        if problems:
            raise ValueError("CloudFormation would refuse these parameters: " + "; ".join(problems))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Contains":  # Rules only
                items, item = arg
                return str(self.resolve(item)) in {str(v) for v in self.resolve(items)}
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                delimiter, text = arg
                return str(self.resolve(text)).split(delimiter)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(v) for v in self.resolve(items))
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key}: the local stack does not resolve it")
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"!Ref {name}: the local stack has not created that resource")

    def _get_att(self, logical: str, attribute: str) -> str:
        try:
            return self.attributes[(logical, attribute)]
        except KeyError:
            raise KeyError(f"!GetAtt {logical}.{attribute}: not known to the local stack") from None

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match) -> str:
            name = match[1]
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self._get_att(*name.split(".", 1)))
            return str(self._ref(name))

        return _SUB.sub(replace, text)


def substitute_definition(definition: str, substitutions: dict[str, Any]) -> str:
    """What CloudFormation does with DefinitionSubstitutions: plain text replacement of
    `${Name}`, which is why numbers may stand unquoted in the ASL file."""
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", str(value))
    leftover = re.findall(r"\$\{[A-Za-z0-9_]+\}", definition)
    if leftover:
        raise ValueError(f"state machine placeholders without a substitution: {leftover}")
    return definition
