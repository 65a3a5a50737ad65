"""Limits on the shape of JSON that clients send (request bodies, imported lines), checked
right after parsing and before anything encodes it again.

orjson parses up to 1,024 levels of nesting but encodes at most 254, so without this check a
`custom` nested 255 to 1,023 levels deep was accepted by the parser and then crashed the
encoder (a 500, or a traceback in an import). No lead needs more than a few levels.

>>> too_deep_field({"name": "Ada", "custom": {"plan": ["a", {"b": 1}]}}) is None
True
>>> too_deep_field({"custom": [[[[1]]]]}, max_depth=3)
'custom'
>>> too_deep_error({"custom": [[[[1]]]]}, max_depth=3).details
{'field': 'custom', 'maxDepth': 3}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leads_api.errors import ValidationError

# Levels of arrays and objects one field's value may nest: `{"custom": [[1]]}` is 2.
MAX_DEPTH = 32
# One imported JSONL line may be as large as one request body.
MAX_LINE_BYTES = 1024 * 1024
_NAME_SHOWN = 100  # characters of a client-chosen key repeated in a message


def too_deep_field(obj: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> str | None:
    """The first key of `obj` whose value nests more than `max_depth` levels, else None.

    Iterative, so a value nested as deep as the parser allows cannot exhaust Python's stack.
    """
    for name, value in obj.items():
        if not isinstance(value, dict | list):
            continue
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:
            container, depth = stack.pop()
            if depth > max_depth:
                return name
            children = container.values() if isinstance(container, dict) else container
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return None


def too_deep_error(obj: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> ValidationError | None:
    """A VALIDATION_ERROR naming the field that nests too deep, or None when none does."""
    name = too_deep_field(obj, max_depth=max_depth)
    if name is None:
        return None
    shown = name[:_NAME_SHOWN]
    return ValidationError(
        f"{shown} nests arrays and objects more than {max_depth} levels deep",
        field=shown,
        maxDepth=max_depth,
    )


def check_depth(obj: Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> None:
    """Raise the error of `too_deep_error`, if any."""
    error = too_deep_error(obj, max_depth=max_depth)
    if error is not None:
        raise error
