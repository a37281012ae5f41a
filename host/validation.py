"""What the host's pydantic models share: strict field types, one error text, schema output.

The agent configuration (``gateway.config``) and the board profiles (``tools.deploy.profile``)
are pydantic models: they validate, fill defaults and give the JSON schema. Their errors become
the host's own (``ConfigError``, ``ProfileError``) with :func:`describe`, which names each field
the way the file spells it (``ecu[0].public_key``, ``uart.baud``).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, SkipJsonSchema
from pydantic_core import ErrorDetails

#: Every section of a file: unknown keys are refused (a typo is an error, not a default),
#: objects are immutable once validated.
SECTION: Final = ConfigDict(extra="forbid", frozen=True)

Uint = Annotated[StrictInt, Field(ge=0)]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
T = TypeVar("T")


def _exact_int(value: object) -> object:
    if type(value) is not int:  # a Literal of ints takes True for 1 and 2.0 for 2
        raise ValueError("should be an integer")
    return value


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


#: ``IntChoice[Literal[0, 9]]``: one of these integers, and an integer (never ``true``/``2.0``).
IntChoice = Annotated[T, BeforeValidator(_exact_int)]
#: ``Absent[NonEmpty]``: a key that may be left out (None in Python) but never given as null.
Absent = Annotated[T | SkipJsonSchema[None], BeforeValidator(_not_null)]
#: At most this many problems are listed in one error text, each value shown this long at most.
MAX_LISTED: Final = 5
MAX_SHOWN: Final = 60
_UNION_TAG: Final = re.compile(r"(constrained-)?(int|str|float|bool|bytes)|.*\[.*")


class Section(BaseModel):
    """Base of the models of one table / object of a file."""

    model_config = SECTION


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _UNION_TAG.fullmatch(part):  # a union member's tag, not a key of the file
            continue
        else:
            out += f".{part}" if out else part
    return out


def _shown(value: object) -> str:
    """A value from the file as the error text quotes it (cut short: it is untrusted input)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def _text(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "is missing"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "is not a known key"
    if kind == "literal_error":
        return f"{_shown(err['input'])} unknown (expected {ctx.get('expected')})"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    text = re.sub(r"^[A-Z][a-z]+ should", "should", str(err["msg"]))
    # the words of the files (JSON, TOML), not Python's
    text = re.sub(r"a valid (tuple|list)", "an array", text)
    return re.sub(r"a valid dictionary( or instance of \w+)?", "a table (object)", text)


def describe(exc: ValidationError, limit: int = MAX_LISTED) -> str:
    """One line naming every field in error (the branches of a union merged), with the value
    given when it is a plain one."""
    merged: dict[str, tuple[list[str], str]] = {}
    for err in exc.errors(include_url=False):
        got = err.get("input")
        shown = f" (got {_shown(got)})" if isinstance(got, str | int | float) else ""
        texts, _ = merged.setdefault(_where(err["loc"]), ([], shown))
        if (text := _text(err)) not in texts:
            texts.append(text)
    parts = []
    for where, (texts, shown) in merged.items():
        if not where:  # a rule across fields: its text names them
            parts.append(" or ".join(texts))
        elif texts[0].startswith("is ") or texts[0].startswith("'"):
            parts.append(f"{where} {texts[0]}")
        else:
            parts.append(f"{where}: {' or '.join(texts)}{shown}")
    more = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


class _NoFieldTitles(GenerateJsonSchema):
    """JSON schema without a ``title`` per property (the key already names it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if out.get("default", 0) is None:  # an ``Absent`` key: leaving it out is the default
            del out["default"]
        return out


def json_schema(model: type[BaseModel], **head: Any) -> str:
    """``model``'s JSON schema (validation mode) as stable text; ``head`` keys come first and
    win over the model's own (``title``, ``description``)."""
    body: JsonSchemaValue = model.model_json_schema(schema_generator=_NoFieldTitles)
    doc = {**head, **{k: v for k, v in body.items() if k not in head}}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
