"""advance_parameters: the one schema of the training knobs that clients may set.

A TrainSpec field declared with `advance(...)` is a knob the API's `advance_parameters`, the
CLI's flags and the docs' presets table all offer. `advance_model` derives from those fields a
pydantic model with the same types, bounds and rules (they live in the field's metadata, so they
are copied, never restated), every field optional (None: the preset's value), plus the aliases
users send (`lora_rank` -> `rank`) and keys that are stored but not trained on (the seeds'
`prompt`, `theme`). Numbers are strict, as /v1's are: `"100"` is not a number of steps. Any other key is refused with its name and the closest known key
("did you mean learning_rate?"). Adding a field to TrainSpec with `advance(...)` is all it takes
for it to reach every one of those places.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Union

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MultipleOf
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from loraforge.hints import closest

ADVANCE_MARK = "advance_parameter"


def advance(default: Any, *, description: str, **constraints: Any) -> Any:
    """A TrainSpec field that clients may set; `constraints` are pydantic's (ge, le, multiple_of...)."""
    return Field(default, description=description, json_schema_extra={ADVANCE_MARK: True}, **constraints)


def is_advance(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(ADVANCE_MARK))


def base_type(annotation: Any) -> Any:
    """`int` for `int`, `int | None` or `Annotated[int, ...]`; the Literal itself for a Literal."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return base_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return base_type(args[0]) if len(args) == 1 else annotation
    return annotation


def unknown_key(key: Any, known: list[str], hints: dict[str, str] | None = None) -> PydanticCustomError:
    """The error for an unknown `key`: its name and the closest of `known` (loraforge.hints.closest)."""
    text = str(key)
    match = closest(text, known, hints)
    hint = f"did you mean {match}?" if match else "known keys: " + ", ".join(sorted(known))
    return PydanticCustomError("unknown_key", "unknown key {key}; {hint}", {"key": repr(text[:60]), "hint": hint})


class AdvanceBase(BaseModel):
    """Maps aliases and refuses unknown keys (naming the closest); numbers are strict."""

    model_config = ConfigDict(extra="forbid")

    ALIASES: ClassVar[dict[str, str]] = {}
    HINTS: ClassVar[dict[str, str]] = {}  # names too far from ours for difflib (lr -> learning_rate)

    @classmethod
    def known_keys(cls) -> list[str]:
        return sorted([*cls.model_fields, *cls.ALIASES])

    @model_validator(mode="before")
    @classmethod
    def _map_keys(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise PydanticCustomError("object_type", "must be a JSON object of training parameters")
        mapped: dict[str, Any] = {}
        for key, value in data.items():
            name = cls.ALIASES.get(str(key), str(key))
            if name not in cls.model_fields:
                raise unknown_key(key, cls.known_keys(), cls.HINTS)
            if name in mapped and mapped[name] != value:
                raise PydanticCustomError(
                    "alias_conflict", "{name} is given twice with different values (once as an alias)",
                    {"name": name},
                )
            mapped[name] = value
        return mapped


def _strict_number(value: Any) -> Any:
    # Strict like /v1 (loraforge.inference.request): JSON true is not a number of steps and "100"
    # is not 100 (pydantic's lax mode would read them as 1 and 100). The seeds send numbers.
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, not a boolean")
    if isinstance(value, str):
        raise PydanticCustomError("number_type", "must be a number, not a string ({value})", {"value": repr(value[:20])})
    return value


def advance_model(spec: type[BaseModel], *, name: str, aliases: dict[str, str], hints: dict[str, str],
                  stored: dict[str, Any]) -> type[AdvanceBase]:
    """The advance_parameters model of `spec`: its `advance(...)` fields, optional, same rules.

    `aliases` maps other names users send to field names; `hints` names the field to suggest for
    an unknown key; `stored` adds fields (name -> (annotation, Field)) that are accepted and
    stored but not part of `spec`.
    """
    fields: dict[str, Any] = {}
    numeric = []
    for key, info in spec.model_fields.items():
        if not is_advance(info):
            continue
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[key] = (annotation | None, Field(None, description=info.description))
        if base_type(info.annotation) in (int, float):
            numeric.append(key)
    fields.update(stored)
    validators = {"_strict_numbers": field_validator(*numeric, mode="before")(_strict_number)} if numeric else {}
    model = create_model(name, __base__=AdvanceBase, __validators__=validators, **fields)
    model.ALIASES = dict(aliases)
    model.HINTS = dict(hints)
    return model


def describe_rules(annotation: Any, info: FieldInfo) -> str:
    """A field's type and bounds in words, e.g. `integer, 64..2048, multiple of 16`."""
    kind = base_type(annotation)
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(kind))
    words = {int: "integer", float: "number", bool: "boolean", str: "string"}.get(kind, "list of strings")
    lower = upper = None
    extra = []
    for item in info.metadata:
        if isinstance(item, Ge):
            lower = f"{item.ge}"
        elif isinstance(item, Gt):
            lower = f"> {item.gt}"
        elif isinstance(item, Le):
            upper = f"{item.le}"
        elif isinstance(item, Lt):
            upper = f"< {item.lt}"
        elif isinstance(item, MultipleOf):
            extra.append(f"multiple of {item.multiple_of}")
        elif isinstance(item, MaxLen):
            extra.append(f"at most {item.max_length} long")
    if lower and upper:
        bounds = f"{lower}..{upper}" if not lower.startswith(">") else f"{lower} and <= {upper}"
        extra.insert(0, bounds)
    return ", ".join([words, *extra])
