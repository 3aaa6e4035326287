"""Component values as a person types them on a command line, and as JSON to read back.

``virtwasi run --invoke NAME ARGS...`` reads each argument as its parameter's type asks:
a ``string`` or ``char`` is the text itself; numbers and ``bool`` (``true``/``false``) are
their literals; any other type is JSON: a list (a ``list<u8>`` may also be a JSON string,
its UTF-8 bytes), a record an object keyed by field name, a tuple an array, an option
``null`` or the value, a result ``{"ok": v}`` or ``{"error": v}``, a variant ``{"case":
v}`` (or ``"case"`` with no payload), an enum its case name, flags an array of names.
Results print as JSON in the same forms (bytes as an array of numbers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .layout import Shape
from .values import Err, Ok, Some, Variant

_INTS = {"u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64"}


def values_from_text(params: Sequence[tuple[str, Shape]], texts: Sequence[str]) -> list[Any]:
    """The arguments ``texts`` as values of ``params`` (name, shape); ValueError naming
    the parameter that does not read."""
    if len(texts) != len(params):
        names = ", ".join(name for name, _ in params) or "none"
        raise ValueError(f"the function takes {len(params)} argument(s) ({names}), "
                         f"got {len(texts)}")
    values = []
    for (name, shape), text in zip(params, texts, strict=True):
        try:
            values.append(_from_text(shape, text))
        except ValueError as exc:
            raise ValueError(f"argument {name!r}: {exc}") from None
    return values


def _from_text(shape: Shape, text: str) -> Any:
    if shape.kind in ("string", "char"):
        return text
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{text!r} is not a {shape.kind} (JSON expected)") from None
    return from_json(shape, data)


def from_json(shape: Shape, data: Any) -> Any:
    """``data`` (as ``json.loads`` gives it) as a value of ``shape``."""
    kind = shape.kind
    if kind in _INTS:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"{data!r} is not an integer")
        return data
    if kind in ("f32", "f64"):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"{data!r} is not a number")
        return float(data)
    if kind == "bool":
        if not isinstance(data, bool):
            raise ValueError(f"{data!r} is not true or false")
        return data
    if kind in ("string", "char"):
        if not isinstance(data, str):
            raise ValueError(f"{data!r} is not a string")
        return data
    if kind == "list":
        (element,) = shape.elements
        assert element is not None
        if element.kind == "u8" and isinstance(data, str):
            return data.encode()
        items = _array(data, "a list")
        if element.kind == "u8":
            return bytes(from_json(element, item) for item in items)
        return [from_json(element, item) for item in items]
    if kind == "record":
        if not isinstance(data, dict) or set(data) != set(shape.labels):
            raise ValueError(f"{data!r} is not a record with the fields "
                             f"{', '.join(shape.labels)}")
        return {label: from_json(field, data[label])  # type: ignore[arg-type]
                for label, field in zip(shape.labels, shape.elements, strict=True)}
    if kind == "tuple":
        items = _array(data, "a tuple")
        if len(items) != len(shape.elements):
            raise ValueError(f"{data!r} is not a tuple of {len(shape.elements)}")
        return tuple(from_json(e, item)  # type: ignore[arg-type]
                     for e, item in zip(shape.elements, items, strict=True))
    if kind == "option":
        some = shape.elements[1]
        assert some is not None
        if data is None:
            return None
        value = from_json(some, data)
        return Some(value) if some.kind == "option" else value
    if kind == "enum":
        if data not in shape.labels:
            raise ValueError(f"{data!r} is not one of {', '.join(shape.labels)}")
        return data
    if kind == "flags":
        names = set(_array(data, "an array of flag names"))
        unknown = names - set(shape.labels)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not flags of {', '.join(shape.labels)}")
        return names
    if kind in ("variant", "result"):
        case, payload = _case(data, shape)
        at = shape.labels.index(case)
        carried = shape.elements[at]
        value = None if carried is None else from_json(carried, payload)
        if kind == "result":
            return Ok(value) if case == "ok" else Err(value)
        return Variant(case, value)
    raise ValueError(f"a {kind} cannot be given on the command line")


def _array(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ValueError(f"{data!r} is not {what} (a JSON array)")
    return data


def _case(data: Any, shape: Shape) -> tuple[str, Any]:
    if isinstance(data, str) and data in shape.labels:
        return data, None
    if isinstance(data, dict) and len(data) == 1:
        ((case, payload),) = data.items()
        if case in shape.labels:
            return case, payload
    raise ValueError(f"{data!r} is not a case of {', '.join(shape.labels)} "
                     '({"case": value}, or "case" with no payload)')


def to_json(value: Any) -> Any:
    """A value as JSON data (see the module's forms)."""
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, Ok | Err):
        return {"ok" if isinstance(value, Ok) else "error": to_json(value.value)}
    if isinstance(value, Variant):
        return value.case if value.value is None else {value.case: to_json(value.value)}
    if isinstance(value, Some):
        return to_json(value.value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(value)
    return value


def value_as_json(value: Any) -> str:
    return json.dumps(to_json(value), ensure_ascii=False)
