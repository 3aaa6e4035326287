"""Lift and lower closures, compiled once per type: the canonical ABI's value rules.

:func:`compile_value` turns a :class:`~.layout.Shape` into a :class:`ValueABI`: loading from
and storing into linear memory, lifting from and lowering into core values. Each closure
holds the closures of its parts, so a call never walks a type tree; a ``list<u8>`` or a
string is one slice of memory, and lists of numbers are one ``struct`` call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .layout import Shape, discriminant_size
from .model import StringEncoding
from .values import (
    M32,
    M64,
    MAX_STRING_BYTE_LENGTH,
    NAN,
    UTF16_TAG,
    CallContext,
    Err,
    Ok,
    Some,
    Trap,
    Variant,
)

_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_I32 = struct.Struct("<I")
_I64 = struct.Struct("<Q")

Load = Callable[[CallContext, int], Any]
Store = Callable[[CallContext, Any, int], None]
LiftFlat = Callable[[CallContext, Sequence[Any], int], Any]
LowerFlat = Callable[[CallContext, Any, list[Any]], None]


@dataclass(frozen=True, slots=True)
class ValueABI:
    """The four compiled conversions of one value type."""

    shape: Shape
    load: Load
    """The value stored at a pointer already checked against ``shape``'s size and alignment."""
    store: Store
    lift_flat: LiftFlat
    """The value of ``len(shape.flat)`` core values starting at an index."""
    lower_flat: LowerFlat
    """Appends the value's core values to a list."""


# -- scalars ----------------------------------------------------------------------------------

_INTS: dict[str, tuple[str, int, int]] = {  # struct code, lowest, highest
    "u8": ("B", 0, 0xFF), "s8": ("b", -0x80, 0x7F), "u16": ("H", 0, 0xFFFF),
    "s16": ("h", -0x8000, 0x7FFF), "u32": ("I", 0, M32), "s32": ("i", -(1 << 31), M32 >> 1),
    "u64": ("Q", 0, M64), "s64": ("q", -(1 << 63), M64 >> 1),
}
_CODES = {**{k: v[0] for k, v in _INTS.items()}, "f32": "f", "f64": "d"}


def _lift_int(kind: str) -> Callable[[int], int]:
    """The core value (signed or not, as the engine gives it) read as ``kind``."""
    bits = struct.calcsize(_INTS[kind][0]) * 8
    mask = (1 << bits) - 1
    if kind.startswith("u"):
        return lambda i: i & mask
    sign = 1 << (bits - 1)
    return lambda i: ((i & mask) ^ sign) - sign


def _check_int(kind: str) -> Callable[[Any], int]:
    _, lo, hi = _INTS[kind]
    mask = M64 if kind.endswith("64") else M32

    def lower(v: Any) -> int:
        if not isinstance(v, int):
            raise TypeError(f"{kind} wants an int, not {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"{v} does not fit in a {kind}")
        return v & mask
    return lower


def _nan(x: float) -> float:
    return x if x == x else NAN


def _f32(x: Any) -> float:
    """``x`` rounded to a float32 (canonical if a NaN)."""
    try:
        rounded: float = _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        raise ValueError(f"{x} does not fit in an f32") from None
    except struct.error as exc:
        raise TypeError(f"f32 wants a float: {exc}") from None
    return _nan(rounded)


def _f64(x: Any) -> float:
    if not isinstance(x, (float, int)):
        raise TypeError(f"f64 wants a float, not {type(x).__name__}")
    return _nan(float(x))


def _char(i: int) -> str:
    if i >= 0x110000 or 0xD800 <= i <= 0xDFFF:
        raise Trap(f"{i:#x} is not a Unicode scalar value (char)")
    return chr(i)


def _ord(c: Any) -> int:
    if not isinstance(c, str) or len(c) != 1:
        raise TypeError(f"char wants a one-character str, not {c!r}")
    i = ord(c)
    if 0xD800 <= i <= 0xDFFF:
        raise ValueError(f"{c!r} is a surrogate, not a Unicode scalar value")
    return i


def _scalar_lift(kind: str) -> Callable[[Any], Any]:
    """From the core value of the flattened ``kind`` to its Python value."""
    if kind == "bool":
        return lambda i: i & M32 != 0
    if kind in _INTS:
        return _lift_int(kind)
    if kind in ("f32", "f64"):
        return _nan
    assert kind == "char"
    return lambda i: _char(i & M32)


def _scalar_lower(kind: str) -> Callable[[Any], Any]:
    if kind == "bool":
        return lambda v: 1 if v else 0
    if kind in _INTS:
        return _check_int(kind)
    if kind == "f32":
        return _f32
    if kind == "f64":
        return _f64
    assert kind == "char"
    return _ord


# Coercions between a variant case's own core types and the joined slots that carry them.
def _lift_coercion(have: str, want: str) -> Callable[[Any], Any] | None:
    if have == want:
        return None
    if want == "i32":  # from i64
        return lambda x: x & M32
    if want == "f32":  # from i32 or i64
        return lambda x: _nan(_F32.unpack(_I32.pack(x & M32))[0])
    assert (have, want) == ("i64", "f64")
    return lambda x: _nan(_F64.unpack(_I64.pack(x & M64))[0])


def _lower_coercion(have: str, want: str) -> Callable[[Any], Any] | None:
    if have == want or (have, want) == ("i32", "i64"):
        return None
    if have == "f32":  # into i32 or i64
        return lambda x: _I32.unpack(_F32.pack(x))[0]
    assert (have, want) == ("f64", "i64")
    return lambda x: _I64.unpack(_F64.pack(x))[0]


# -- variant-like values ----------------------------------------------------------------------

def _wrapper(shape: Shape) -> Callable[[int, Any], Any]:
    """From (case index, payload) to the Python value of a variant-like shape."""
    labels = shape.labels
    if shape.kind == "variant":
        return lambda i, v: Variant(labels[i], v)
    if shape.kind == "enum":
        return lambda i, v: labels[i]
    if shape.kind == "result":
        return lambda i, v: Ok(v) if i == 0 else Err(v)
    some = shape.elements[1]
    assert some is not None
    if some.kind == "option":
        return lambda i, v: Some(v) if i else None
    return lambda i, v: v if i else None


def _unwrapper(shape: Shape) -> Callable[[Any], tuple[int, Any]]:
    """From a Python value to (case index, payload) of a variant-like shape."""
    index = {label: i for i, label in enumerate(shape.labels)}
    kind = shape.kind

    def case(label: Any) -> int:
        try:
            return index[label]
        except (KeyError, TypeError):
            raise ValueError(f"{label!r} is not a case of this {kind} "
                             f"({', '.join(shape.labels)})") from None

    if kind == "variant":
        def variant(v: Any) -> tuple[int, Any]:
            if not isinstance(v, Variant):
                raise TypeError(f"a variant wants a Variant, not {type(v).__name__}")
            return case(v.case), v.value
        return variant
    if kind == "enum":
        return lambda v: (case(v), None)
    if kind == "result":
        def result(v: Any) -> tuple[int, Any]:
            if isinstance(v, Ok):
                return 0, v.value
            if isinstance(v, Err):
                return 1, v.value
            raise TypeError(f"a result wants Ok or Err, not {type(v).__name__}")
        return result
    some = shape.elements[1]
    assert some is not None
    if some.kind == "option":
        def nested(v: Any) -> tuple[int, Any]:
            if v is None:
                return 0, None
            if not isinstance(v, Some):
                raise TypeError("an option of an option wants None or Some(...)")
            return 1, v.value
        return nested
    return lambda v: (0, None) if v is None else (1, v)


Compile = Callable[[Shape], ValueABI]
"""How a compiler gets the (cached) ValueABI of a part, in the same string encoding."""


def compile_value(shape: Shape, encoding: StringEncoding, sub: Compile) -> ValueABI:
    """The conversions of ``shape``; ``sub`` gives those of its parts."""
    kind = shape.kind
    if kind in _INTS or kind in ("bool", "f32", "f64", "char"):
        return _compile_scalar(shape)
    if kind == "string":
        lift_s, lower_s = _string_codec(encoding)
        return _compile_range(shape, lift_s, lower_s)
    if kind == "list":
        element = shape.elements[0]
        assert element is not None
        lift_l, lower_l = _list_codec(sub(element))
        return _compile_range(shape, lift_l, lower_l)
    if kind in ("record", "tuple"):
        return _compile_record(shape, sub)
    if kind in ("variant", "enum", "option", "result"):
        return _compile_variant(shape, sub)
    if kind == "flags":
        return _compile_flags(shape)
    return _compile_handle(shape)


def _compile_scalar(shape: Shape) -> ValueABI:
    kind = shape.kind
    lift, lower = _scalar_lift(kind), _scalar_lower(kind)
    code = "I" if kind == "char" else "B" if kind == "bool" else _CODES[kind]
    layout = struct.Struct("<" + code)
    unpack, pack = layout.unpack_from, layout.pack_into
    if kind == "bool":
        def load(cx: CallContext, ptr: int) -> Any:
            return cx.view[ptr] != 0
    elif kind in ("f32", "f64", "char"):
        def load(cx: CallContext, ptr: int) -> Any:
            return lift(unpack(cx.view, ptr)[0])
    else:
        def load(cx: CallContext, ptr: int) -> Any:
            return unpack(cx.view, ptr)[0]
    if kind in _INTS and kind.startswith("s"):
        def store(cx: CallContext, v: Any, ptr: int) -> None:
            lower(v)
            pack(cx.view, ptr, v)
    else:
        def store(cx: CallContext, v: Any, ptr: int) -> None:
            pack(cx.view, ptr, lower(v))

    def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
        return lift(flat[i])

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(lower(v))
    return ValueABI(shape, load, store, lift_flat, lower_flat)


RangeLift = Callable[[CallContext, int, int], Any]
RangeLower = Callable[[CallContext, Any], tuple[int, int]]


def _compile_range(shape: Shape, lift: RangeLift, lower: RangeLower) -> ValueABI:
    """A string or list: a (pointer, length) pair, in two flat values or eight bytes."""
    pair = struct.Struct("<II")

    def load(cx: CallContext, ptr: int) -> Any:
        begin, length = pair.unpack_from(cx.view, ptr)
        return lift(cx, begin, length)

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        begin, length = lower(cx, v)
        pair.pack_into(cx.view, ptr, begin, length)

    def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
        return lift(cx, flat[i] & M32, flat[i + 1] & M32)

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.extend(lower(cx, v))
    return ValueABI(shape, load, store, lift_flat, lower_flat)


def _decode(cx: CallContext, ptr: int, size: int, align: int, codec: str) -> str:
    view = cx.span(ptr, size, align, "string")
    try:
        return str(view[ptr:ptr + size], codec)
    except UnicodeDecodeError as exc:
        raise Trap(f"string of {size} bytes at {ptr:#x} is not valid {exc.encoding}: "
                   f"{exc.reason} at byte {exc.start}") from None


def _too_long(size: int) -> None:
    if size > MAX_STRING_BYTE_LENGTH:
        raise Trap(f"a string of {size} bytes is too large to copy into wasm")


def _string_codec(encoding: StringEncoding) -> tuple[RangeLift, RangeLower]:
    if encoding is StringEncoding.UTF8:
        def lift(cx: CallContext, ptr: int, units: int) -> str:
            return _decode(cx, ptr, units, 1, "utf-8")

        def lower(cx: CallContext, v: Any) -> tuple[int, int]:
            data = _utf8(v)
            _too_long(len(data))
            ptr = cx.allocate(0, 0, 1, len(data), "a string")
            cx.view[ptr:ptr + len(data)] = data
            return ptr, len(data)
        return lift, lower

    if encoding is StringEncoding.UTF16:
        def lift16(cx: CallContext, ptr: int, units: int) -> str:
            return _decode(cx, ptr, 2 * units, 2, "utf-16-le")

        def lower16(cx: CallContext, v: Any) -> tuple[int, int]:
            worst = 2 * len(_utf8(v))
            _too_long(worst)
            ptr = cx.allocate(0, 0, 2, worst, "a string")
            data = v.encode("utf-16-le")
            cx.view[ptr:ptr + len(data)] = data
            if len(data) < worst:
                ptr = cx.allocate(ptr, worst, 2, len(data), "a string")
            return ptr, len(data) // 2
        return lift16, lower16

    def lift_compact(cx: CallContext, ptr: int, units: int) -> str:
        if units & UTF16_TAG:
            return _decode(cx, ptr, 2 * (units ^ UTF16_TAG), 2, "utf-16-le")
        return _decode(cx, ptr, units, 2, "latin-1")

    def lower_compact(cx: CallContext, v: Any) -> tuple[int, int]:
        size = len(_utf8(v))
        _too_long(size)
        ptr = cx.allocate(0, 0, 2, size, "a string")
        try:
            data = v.encode("latin-1")
        except UnicodeEncodeError as exc:
            latin = v[:exc.start].encode("latin-1")
            cx.view[ptr:ptr + len(latin)] = latin
            worst = 2 * size
            _too_long(worst)
            ptr = cx.allocate(ptr, size, 2, worst, "a string")
            data = v.encode("utf-16-le")
            cx.view[ptr:ptr + len(data)] = data
            if len(data) < worst:
                ptr = cx.allocate(ptr, worst, 2, len(data), "a string")
            return ptr, len(data) // 2 | UTF16_TAG
        cx.view[ptr:ptr + len(data)] = data
        if len(data) < size:
            ptr = cx.allocate(ptr, size, 2, len(data), "a string")
        return ptr, len(data)
    return lift_compact, lower_compact


def _utf8(v: Any) -> bytes:
    if not isinstance(v, str):
        raise TypeError(f"string wants a str, not {type(v).__name__}")
    try:
        return v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a str with a lone surrogate is no string") from None


def _list_codec(element: ValueABI) -> tuple[RangeLift, RangeLower]:
    e = element.shape
    size, align, kind = e.size, e.align, e.kind
    load, store = element.load, element.store

    def checked(cx: CallContext, ptr: int, length: int) -> memoryview:
        return cx.span(ptr, length * size, align, f"list<{kind}>")

    def reserve(cx: CallContext, v: Any) -> tuple[int, int]:
        if not isinstance(v, (list, tuple, bytes, bytearray, memoryview)):
            raise TypeError(f"list<{kind}> wants a list, not {type(v).__name__}")
        nbytes = len(v) * size
        if nbytes > M32:
            raise Trap(f"a list<{kind}> of {len(v)} elements is too large to copy into wasm")
        return cx.allocate(0, 0, align, nbytes, f"a list<{kind}>"), len(v)

    if kind == "u8":
        def lift_bytes(cx: CallContext, ptr: int, length: int) -> Any:
            return bytes(checked(cx, ptr, length)[ptr:ptr + length])

        def lower_bytes(cx: CallContext, v: Any) -> tuple[int, int]:
            if isinstance(v, (list, tuple)):
                try:
                    v = bytes(v)
                except (ValueError, TypeError):
                    raise ValueError("list<u8> wants bytes, or ints from 0 to 255") from None
            ptr, length = reserve(cx, v)
            cx.view[ptr:ptr + length] = v
            return ptr, length
        return lift_bytes, lower_bytes

    if kind in _CODES or kind in ("bool", "char"):
        code = "B" if kind == "bool" else "I" if kind == "char" else _CODES[kind]
        converts: dict[str, Callable[[Any], Any]] = {
            "bool": bool, "char": _char, "f32": _nan, "f64": _nan}
        convert = converts.get(kind)
        prepare: Callable[[Any], Any] | None = {
            "bool": lambda v: 1 if v else 0, "char": _ord, "f32": _f32, "f64": _f64}.get(kind)
        check = _check_int(kind) if kind in _INTS else None

        def lift_many(cx: CallContext, ptr: int, length: int) -> Any:
            view = checked(cx, ptr, length)
            values = struct.unpack_from(f"<{length}{code}", view, ptr)
            if convert is None:
                return list(values)
            return [convert(x) for x in values]

        def lower_many(cx: CallContext, v: Any) -> tuple[int, int]:
            if not isinstance(v, (list, tuple)):
                raise TypeError(f"list<{kind}> wants a list, not {type(v).__name__}")
            values = v if prepare is None else [prepare(x) for x in v]
            try:  # packed before realloc: a value that does not fit changes nothing
                data = struct.pack(f"<{len(values)}{code}", *values)
            except struct.error:
                assert check is not None
                for x in values:
                    check(x)  # says which element does not fit, and how
                raise TypeError(f"list<{kind}> wants ints") from None
            ptr, length = reserve(cx, v)
            cx.view[ptr:ptr + len(data)] = data
            return ptr, length
        return lift_many, lower_many

    def lift_each(cx: CallContext, ptr: int, length: int) -> Any:
        checked(cx, ptr, length)
        return [load(cx, at) for at in range(ptr, ptr + length * size, size)]

    def lower_each(cx: CallContext, v: Any) -> tuple[int, int]:
        ptr, length = reserve(cx, v)
        for at, x in zip(range(ptr, ptr + length * size, size), v, strict=True):
            store(cx, x, at)
        return ptr, length
    return lift_each, lower_each


def _compile_record(shape: Shape, sub: Compile) -> ValueABI:
    fields = [sub(f) for f in shape.elements if f is not None]
    offsets = shape.offsets()
    starts = [sum(len(f.shape.flat) for f in fields[:j]) for j in range(len(fields))]
    loads = list(zip(fields, offsets, strict=True))
    lifts = list(zip(fields, starts, strict=True))
    labels = shape.labels
    n = len(fields)
    if shape.kind == "record":
        parts = list(zip(labels, fields, offsets, starts, strict=True))

        def load(cx: CallContext, ptr: int) -> Any:
            return {label: f.load(cx, ptr + off) for label, f, off, _ in parts}

        def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
            return {label: f.lift_flat(cx, flat, i + start) for label, f, _, start in parts}

        def items(v: Any) -> list[Any]:
            try:
                return [v[label] for label in labels]
            except KeyError as exc:
                raise ValueError(f"the record value has no field {exc}") from None
            except TypeError:
                raise TypeError(f"a record wants a dict, not {type(v).__name__}") from None
    else:
        def load(cx: CallContext, ptr: int) -> Any:
            return tuple([f.load(cx, ptr + off) for f, off in loads])

        def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
            return tuple([f.lift_flat(cx, flat, i + start) for f, start in lifts])

        def items(v: Any) -> list[Any]:
            if not isinstance(v, (tuple, list)) or len(v) != n:
                raise TypeError(f"a tuple of {n} wants a tuple of {n}, not {v!r:.60}")
            return list(v)

    def store_any(cx: CallContext, v: Any, ptr: int) -> None:
        for (f, off), x in zip(loads, items(v), strict=True):
            f.store(cx, x, ptr + off)

    store: Store = store_any
    if fields and all(f.shape.kind in _INTS for f in fields):  # a timestamp, a hash...
        store = _packed_store(fields, offsets, items, store_any)

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        for f, x in zip(fields, items(v), strict=True):
            f.lower_flat(cx, x, out)
    return ValueABI(shape, load, store, lift_flat, lower_flat)


def _packed_store(fields: list[ValueABI], offsets: tuple[int, ...],
                  items: Callable[[Any], list[Any]], store: Store) -> Store:
    """``store`` of a record or tuple of integers as one ``struct`` call; a field that
    does not fit goes to ``store``, which says which and how."""
    fmt, at = "<", 0
    for f, off in zip(fields, offsets, strict=True):
        fmt += "x" * (off - at) + _INTS[f.shape.kind][0]
        at = off + f.shape.size
    pack = struct.Struct(fmt).pack_into

    def packed(cx: CallContext, v: Any, ptr: int) -> None:
        values = items(v)
        try:
            pack(cx.view, ptr, *values)
        except struct.error:
            store(cx, v, ptr)

    return packed


def _compile_variant(shape: Shape, sub: Compile) -> ValueABI:
    cases = [None if p is None else sub(p) for p in shape.elements]
    count = len(cases)
    wrap, unwrap = _wrapper(shape), _unwrapper(shape)
    disc = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[discriminant_size(count)])
    payload_at = shape.payload_offset
    joined = shape.flat[1:]
    zeros = [0.0 if t[0] == "f" else 0 for t in joined]
    lifts = [[_lift_coercion(have, want)
               for have, want in zip(joined, c.shape.flat, strict=False)]
             if c is not None else [] for c in cases]
    lowers = [[_lower_coercion(have, want)
               for have, want in zip(c.shape.flat, joined, strict=False)]
              if c is not None else [] for c in cases]
    kind = shape.kind

    def case_of(i: int) -> ValueABI | None:
        if i >= count:
            raise Trap(f"{kind} discriminant {i} is out of range ({count} cases)")
        return cases[i]

    def load(cx: CallContext, ptr: int) -> Any:
        i = disc.unpack_from(cx.view, ptr)[0]
        c = case_of(i)
        return wrap(i, None if c is None else c.load(cx, ptr + payload_at))

    def store_any(cx: CallContext, v: Any, ptr: int) -> None:
        i, payload = unwrap(v)
        disc.pack_into(cx.view, ptr, i)
        c = cases[i]
        if c is not None:
            c.store(cx, payload, ptr + payload_at)

    # The commonest results of host calls, in fewer steps.
    store = _quick_store(shape, cases, disc, store_any) \
        if kind in ("result", "enum", "option") else store_any

    def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
        index = flat[i] & M32
        c = case_of(index)
        if c is None:
            return wrap(index, None)
        slots = [x if f is None else f(x)
                 for x, f in zip(flat[i + 1:i + 1 + len(c.shape.flat)], lifts[index],
                                 strict=True)]
        return wrap(index, c.lift_flat(cx, slots, 0))

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        index, payload = unwrap(v)
        out.append(index)
        c = cases[index]
        used = 0
        if c is not None:
            mine: list[Any] = []
            c.lower_flat(cx, payload, mine)
            out.extend(x if f is None else f(x) for x, f in zip(mine, lowers[index], strict=True))
            used = len(mine)
        out.extend(zeros[used:])
    return ValueABI(shape, load, store, lift_flat, lower_flat)


def _quick_store(shape: Shape, cases: list[ValueABI | None], disc: struct.Struct,
                 store: Store) -> Store:
    """``store`` of a result, an option or an enum with its common values (exactly
    ``Ok``/``Err``, None or a payload, a ``str`` naming a case) decided in place; any
    other value goes to ``store``, which knows what it may be and says what is wrong."""
    pack, payload_at = disc.pack_into, shape.payload_offset
    if shape.kind == "enum":
        index = {label: i for i, label in enumerate(shape.labels)}

        def enum(cx: CallContext, v: Any, ptr: int) -> None:
            i = index.get(v) if type(v) is str else None
            if i is None:
                store(cx, v, ptr)
            else:
                pack(cx.view, ptr, i)

        return enum
    if shape.kind == "option":
        some = cases[1]
        assert some is not None
        if some.shape.kind == "option":  # some(none) is Some(None): left to store
            return store

        def option(cx: CallContext, v: Any, ptr: int) -> None:
            if v is None:
                pack(cx.view, ptr, 0)
            else:
                pack(cx.view, ptr, 1)
                some.store(cx, v, ptr + payload_at)

        return option
    ok, err = cases

    def result(cx: CallContext, v: Any, ptr: int) -> None:
        kind = type(v)
        if kind is Ok:
            pack(cx.view, ptr, 0)
            if ok is not None:
                ok.store(cx, v.value, ptr + payload_at)
        elif kind is Err:
            pack(cx.view, ptr, 1)
            if err is not None:
                err.store(cx, v.value, ptr + payload_at)
        else:
            store(cx, v, ptr)

    return result


def _compile_flags(shape: Shape) -> ValueABI:
    labels = shape.labels
    bit = {label: 1 << i for i, label in enumerate(labels)}
    layout = struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[shape.size])

    def names(i: int) -> set[str]:
        return {label for n, label in enumerate(labels) if i >> n & 1}

    def bits(v: Any) -> int:
        if isinstance(v, str) or not hasattr(v, "__iter__"):
            raise TypeError(f"flags want a set of names, not {v!r:.60}")
        total = 0
        for name in v:
            try:
                total |= bit[name]
            except KeyError:
                raise ValueError(f"{name!r} is not one of the flags "
                                 f"({', '.join(labels)})") from None
        return total

    def load(cx: CallContext, ptr: int) -> Any:
        return names(layout.unpack_from(cx.view, ptr)[0])

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        layout.pack_into(cx.view, ptr, bits(v))

    def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
        return names(flat[i] & M32)

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(bits(v))
    return ValueABI(shape, load, store, lift_flat, lower_flat)


def _compile_handle(shape: Shape) -> ValueABI:
    resource = shape.resource
    own = shape.kind == "own"

    def lift(cx: CallContext, index: int) -> Any:
        calls = cx.handles()
        return (calls.lift_own if own else calls.lift_borrow)(resource, index)

    def lower(cx: CallContext, v: Any) -> int:
        calls = cx.handles()
        return (calls.lower_own if own else calls.lower_borrow)(resource, v) & M32

    def load(cx: CallContext, ptr: int) -> Any:
        return lift(cx, _I32.unpack_from(cx.view, ptr)[0])

    def store(cx: CallContext, v: Any, ptr: int) -> None:
        index = lower(cx, v)
        _I32.pack_into(cx.view, ptr, index)

    def lift_flat(cx: CallContext, flat: Sequence[Any], i: int) -> Any:
        return lift(cx, flat[i] & M32)

    def lower_flat(cx: CallContext, v: Any, out: list[Any]) -> None:
        out.append(lower(cx, v))
    return ValueABI(shape, load, store, lift_flat, lower_flat)
