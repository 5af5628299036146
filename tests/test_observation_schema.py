"""The output schema the door lists is the `Observation`'s own, written out flat: it accepts and
refuses the same instances, with no `$ref` for a client to resolve on every element."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema.validators import validator_for
from referencing import Registry

from engine.agent_view import Element
from engine.agent_view.observation import Observation, Tab
from mcp_server.tools import observation_schema

ELEMENT = Element(id="12", role="textbox", tag="input", type="text", text="", bbox=(1, 2, 3, 4), visible=True,
                  enabled=True, attributes={"id": "tt", "value": "left"})
FULL = Observation(goal="Enter x", url="http://127.0.0.1/x", title="t",
                   tabs=[Tab(index=0, url="http://127.0.0.1/x", title="t", active=True)], focused_id="12",
                   elements=[ELEMENT, ELEMENT.model_copy(update={"id": "13", "type": None})], axtree="[12] textbox",
                   last_action_error="Element [9] is not on the current page", step_index=3, steps_left=7)
EMPTY = Observation(goal="", url="", step_index=0, steps_left=0, episode_over=True)


def _valid(schema: dict[str, Any], instance: object) -> bool:
    return not list(validator_for(schema)(schema, registry=Registry()).iter_errors(instance))


def _wrong(instance: dict[str, Any], path: tuple[Any, ...], value: object) -> dict[str, Any]:
    changed = json.loads(json.dumps(instance))
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed  # type: ignore[no-any-return]


FULL_JSON = FULL.model_dump(mode="json")
INSTANCES = [
    FULL_JSON,
    EMPTY.model_dump(mode="json"),
    _wrong(FULL_JSON, ("elements", 0, "type"), 5),
    _wrong(FULL_JSON, ("elements", 0, "bbox"), [1, 2, 3]),
    _wrong(FULL_JSON, ("elements", 0, "attributes", "id"), 1),
    _wrong(FULL_JSON, ("elements", 0, "reward"), 1.0),
    _wrong(FULL_JSON, ("elements", 0, "id"), KeyError),
    _wrong(FULL_JSON, ("tabs", 0, "active"), "yes"),
    _wrong(FULL_JSON, ("focused_id",), 12),
    _wrong(FULL_JSON, ("last_action_error",), None),
    _wrong(FULL_JSON, ("success",), True),
    _wrong(FULL_JSON, ("goal",), KeyError),
]


@pytest.mark.parametrize("instance", INSTANCES)
def test_flat_schema_judges_as_the_models_own(instance: dict[str, Any]) -> None:
    own = Observation.model_json_schema(mode="serialization")
    assert _valid(observation_schema(), instance) == _valid(own, instance)


def test_real_observations_are_valid_and_nothing_is_a_reference() -> None:
    schema = observation_schema()
    assert _valid(schema, FULL_JSON) and _valid(schema, EMPTY.model_dump(mode="json"))
    wire = json.dumps(schema)
    assert "$ref" not in wire and "$defs" not in wire
    validator_for(schema).check_schema(schema)
