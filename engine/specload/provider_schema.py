"""The spec schema as this installation reads it: ``schemas/spec.v1.json`` (what every store
shares) plus each registered store's own keys, from its kit (``vecmig.providers.kit``).

A key two stores both read is listed once, marked with both (``x-providers``); where their
forms differ, a value is accepted in either form and the store's own check decides.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any

from vecmig.providers import kits
from vecmig.schemas import load as load_schema

SCHEMA_NAME = "spec.v1"
_NOTES = ("description", "x-providers")


@cache
def spec_schema() -> dict[str, Any]:
    schema = copy.deepcopy(load_schema(SCHEMA_NAME))
    defs = schema["$defs"]
    for name, rules in kits().items():
        _merge(defs["connection"]["properties"], rules.connection_schema, name)
        _merge(defs["create"]["properties"], rules.create_schema, name)
        if rules.prices_schema is not None:
            defs["cost"]["properties"][name] = copy.deepcopy(dict(rules.prices_schema))
    return schema


def _merge(properties: dict[str, Any], fragment: Mapping[str, Any], name: str) -> None:
    for key, sub in fragment.items():
        mine = {**copy.deepcopy(dict(sub)), "x-providers": [name]}
        have = properties.get(key)
        if have is None:
            properties[key] = mine
        elif "x-providers" not in have:
            continue  # a key every store shares: the base schema's form holds
        elif _form(have) == _form(mine) or mine in have.get("anyOf", ()):
            have["x-providers"].append(name)
        elif "anyOf" in have:
            have["anyOf"].append(_form(mine))
            have["x-providers"].append(name)
        else:
            properties[key] = {"anyOf": [_form(have), _form(mine)],
                               "x-providers": [*have["x-providers"], name]}


def _form(sub: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sub.items() if k not in _NOTES}
