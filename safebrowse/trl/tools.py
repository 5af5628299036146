"""The door's tools as Python methods TRL can read, and the schemas TRL makes of them.

Each MCP tool becomes a method with the tool's arguments as typed parameters and its
description as a docstring whose `Args:` lists every argument: what
`transformers.utils.get_json_schema` (which TRL uses) turns back into the tool's schema.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from mcp.types import Tool

if TYPE_CHECKING:
    from safebrowse.trl.environment import SafebrowseEnvironment

JSON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _annotation(schema: Mapping[str, Any]) -> Any:
    """The Python type TRL's schema builder (`transformers.utils.get_json_schema`) turns back
    into this JSON schema."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        inner = _annotation(options[0]) if len(options) == 1 else Any
        return inner | None if any(option.get("type") == "null" for option in schema["anyOf"]) else inner
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    if schema.get("type") == "array":
        return list[_annotation(schema.get("items", {}))]  # type: ignore[misc]
    return JSON_TYPES.get(schema.get("type", ""), Any)


def _describe(schema: Mapping[str, Any]) -> str:
    description = schema.get("description") or next(
        (option.get("description") for option in schema.get("anyOf", []) if option.get("description")), None)
    return " ".join(str(description or schema.get("title", "")).split())


def tool_method(tool: Tool) -> Callable[..., Any]:
    """A method that calls `tool` through the door, with the tool's arguments as its parameters
    and its description as a docstring TRL can read (`Args:` lists every argument)."""
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required = set(tool.input_schema.get("required", []))
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for name, schema in properties.items():
        annotations[name] = _annotation(schema)
        default = inspect.Parameter.empty if name in required else schema.get("default")
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=annotations[name]))
    annotations["return"] = str

    def method(self: SafebrowseEnvironment, *args: Any, **arguments: Any) -> str | list[dict[str, Any]]:
        bound = signature.bind(self, *args, **arguments)  # a TypeError names a wrong argument, as Python would
        # Only what the model gave: the door fills in its own defaults, and records the call as made.
        return self._call(tool.name, {key: value for key, value in bound.arguments.items() if key != "self"})

    signature = inspect.Signature(parameters, return_annotation=str)
    description = " ".join((tool.description or tool.title or tool.name).split())
    lines = [description]
    if properties:
        lines += ["", "Args:"] + [f"    {name}: {_describe(schema)}" for name, schema in properties.items()]
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = "\n".join(lines)
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


def door_tools() -> list[Tool]:
    """The MCP door's tools, as it lists them."""
    from mcp_server.tools import build_tools

    return [agent_tool.tool for agent_tool in build_tools().values()]


def tool_schemas(environment_class: type[SafebrowseEnvironment]) -> list[dict[str, Any]]:
    """The tool schemas TRL renders into the prompt for this class (through transformers'
    `get_json_schema`, as TRL does), for supervised rows that must read the same."""
    from transformers.utils.chat_template_utils import get_json_schema

    instance = object.__new__(environment_class)  # no connection: only the bound methods are read
    return [get_json_schema(getattr(instance, name)) for name in sorted(tool_names(environment_class))]


def tool_names(environment_class: type[SafebrowseEnvironment]) -> list[str]:
    """The tools TRL finds on the class: its public functions but `reset`."""
    return [name for name, member in inspect.getmembers(environment_class, inspect.isfunction)
            if not name.startswith("_") and name not in ("reset", "get_reward")]


__all__ = ["door_tools", "tool_method", "tool_names", "tool_schemas"]
