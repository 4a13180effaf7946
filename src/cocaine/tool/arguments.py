"""Values given on the command line as JSON: documents (a file or inline text) and call args.

``--profile`` and ``--runlist`` take either a path to a JSON file or the JSON object itself;
``call`` arguments are JSON when they parse as JSON and plain strings otherwise, so that
``cocaine-tool call storage read apps echo`` needs no quotes around the strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_json_object(source: str, what: str) -> dict[str, Any]:
    """A JSON object from a file path or an inline JSON string; ValueError says what is wrong.

    An existing file wins; otherwise the text itself must be JSON.
    """
    path = Path(source)
    if path.is_file():
        text, origin = path.read_text(encoding="utf-8"), f"{what} file '{source}'"
    elif source.lstrip()[:1] in ("{", "["):
        text, origin = source, f"the inline {what}"
    else:
        try:
            json.loads(source)
        except json.JSONDecodeError:
            raise ValueError(
                f"{what} file '{source}' does not exist (give a path or a JSON object)"
            ) from None
        text, origin = source, f"the inline {what}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{origin} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"{origin} must be a JSON object, not {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def parse_call_arg(text: str) -> Any:
    """A call argument: its JSON value when it is valid JSON, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


__all__ = ["load_json_object", "parse_call_arg"]
