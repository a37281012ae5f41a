"""The committed OpenAPI schema (``host/gateway/api/openapi.json``): generate and compare.

``python -m otalink.host.gateway.api.schema`` rewrites the file;
``tests/gateway/api/test_api.py`` fails when the live app's schema and the committed file differ.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from otalink.host.gateway.api.app import AgentLike, create_app
from pydantic import JsonValue

SCHEMA_FILE = Path(__file__).with_name("openapi.json")


def generate() -> dict[str, JsonValue]:
    """The app's OpenAPI document (routes do not touch the agent while it is built)."""
    return create_app(cast(AgentLike, object())).openapi()


def dumps(schema: Mapping[str, JsonValue]) -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    """Write ``openapi.json`` next to this module (or to ``argv[1]``)."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_FILE
    out.write_text(dumps(generate()), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
