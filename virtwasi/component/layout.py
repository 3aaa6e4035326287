"""Where a component value lives in core wasm: each type resolved into a :class:`Shape`.

A shape is a value type with its indices followed (through a :class:`TypeSpace`) and its
canonical ABI facts computed once: alignment and size in linear memory, and the core types
it flattens to. Tuples, enums, options and results keep their own kind (they lift to
different Python values) but take the layout of the record or variant the spec despecializes
them to. Only 32-bit memories are handled: a pointer is an ``i32``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .binary import UnsupportedFeature
from .model import EqBound, Export, ExternType, Import, Scope, Sort
from .types import (
    BorrowType,
    DefValType,
    EnumType,
    FlagsType,
    ListType,
    OptionType,
    OwnType,
    PrimValType,
    RecordType,
    ResourceType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)

MAX_FLAT_PARAMS = 16
MAX_FLAT_RESULTS = 1
MAX_FLAGS = 32

_PRIMS: dict[PrimValType, tuple[int, str]] = {
    # (size = alignment, flat core type)
    PrimValType.BOOL: (1, "i32"), PrimValType.S8: (1, "i32"), PrimValType.U8: (1, "i32"),
    PrimValType.S16: (2, "i32"), PrimValType.U16: (2, "i32"), PrimValType.S32: (4, "i32"),
    PrimValType.U32: (4, "i32"), PrimValType.S64: (8, "i64"), PrimValType.U64: (8, "i64"),
    PrimValType.F32: (4, "f32"), PrimValType.F64: (8, "f64"), PrimValType.CHAR: (4, "i32"),
}


@dataclass(frozen=True, eq=False)
class Shape:
    """A resolved value type: its ``kind`` (the spec's name), layout and flattening."""

    kind: str
    """``bool``, ``u8``... ``string``, ``list``, ``record``, ``tuple``, ``variant``, ``enum``,
    ``option``, ``result``, ``flags``, ``own`` or ``borrow``."""
    align: int
    size: int
    flat: tuple[str, ...]
    """The core value types it flattens to (``i32``, ``i64``, ``f32``, ``f64``)."""
    elements: tuple[Shape | None, ...] = ()
    """The list's element; the fields of a record or tuple; each case's payload (or None)."""
    labels: tuple[str, ...] = ()
    """Field names, case names (``none``/``some``, ``ok``/``error`` for the specialized
    variants), enum cases or flags, in declaration order."""
    resource: object = None
    """For ``own`` and ``borrow``: the resource type, as the type space identifies it."""

    def offsets(self) -> tuple[int, ...]:
        """For a record or tuple: each field's offset from the start of the value."""
        found: list[int] = []
        at = 0
        for field in self.elements:
            assert field is not None
            at = align_to(at, field.align)
            found.append(at)
            at += field.size
        return tuple(found)

    @property
    def payload_offset(self) -> int:
        """For a variant-like shape: where its payload starts, after the discriminant."""
        return align_to(discriminant_size(len(self.labels)), _max_case_align(self.elements))


class TypeSpace(Protocol):
    """What a type index means: the one question :func:`shape_of` asks of its scope."""

    def value_type(self, index: int) -> DefValType:
        """The value type defined at ``index``, aliases and exports followed."""

    def resource(self, index: int) -> object:
        """An identity for the resource type at ``index`` (what handle callbacks receive)."""


class LocalTypes:
    """The types of one scope whose indices all stay in it: definitions, exports of them,
    and imports bounded by ``(eq i)``. A resource's identity is the index of its definition
    (or of its import). Anything that needs other instances (aliases of instance exports,
    outer aliases) is for instantiation, and is refused here."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def _follow(self, index: int) -> int:
        seen = 0
        while True:
            entry = self.scope.types[index]
            if isinstance(entry, Export) and entry.sort is Sort.TYPE:
                index = entry.index
            elif (isinstance(entry, Import) and isinstance(entry.t, ExternType)
                  and isinstance(entry.t.bound, EqBound)):
                index = entry.t.bound.index
            else:
                return index
            seen += 1
            if seen > len(self.scope.types):  # indices only point back, but stay safe
                raise UnsupportedFeature(f"a cycle of type exports at type {index}")

    def value_type(self, index: int) -> DefValType:
        entry = self.scope.types[self._follow(index)]
        if isinstance(entry, (PrimValType, ListType, RecordType, TupleType, VariantType,
                              EnumType, FlagsType, OptionType, ResultType, OwnType,
                              BorrowType)):
            return entry
        raise UnsupportedFeature(f"type {index} as a value type here ({type(entry).__name__})")

    def resource(self, index: int) -> object:
        found = self._follow(index)
        entry = self.scope.types[found]
        if isinstance(entry, (ResourceType, Import)):
            return found
        raise UnsupportedFeature(f"type {index} as a resource type here ({type(entry).__name__})")


def align_to(at: int, alignment: int) -> int:
    return -(-at // alignment) * alignment


def discriminant_size(cases: int) -> int:
    """Bytes of a variant's discriminant: the smallest of u8, u16, u32 that counts them."""
    if cases <= 1 << 8:
        return 1
    if cases <= 1 << 16:
        return 2
    return 4


def _max_case_align(payloads: tuple[Shape | None, ...]) -> int:
    return max((p.align for p in payloads if p is not None), default=1)


def join(a: str, b: str) -> str:
    """The core type that carries either of ``a`` and ``b`` in one variant slot."""
    if a == b:
        return a
    if {a, b} == {"i32", "f32"}:
        return "i32"
    return "i64"


def _record(kind: str, fields: tuple[Shape, ...], labels: tuple[str, ...]) -> Shape:
    align = max((f.align for f in fields), default=1)
    at = 0
    for f in fields:
        at = align_to(at, f.align) + f.size
    flat = tuple(t for f in fields for t in f.flat)
    return Shape(kind, align, align_to(at, align), flat, fields, labels)


def _variant(kind: str, payloads: tuple[Shape | None, ...], labels: tuple[str, ...]) -> Shape:
    if not labels:
        raise UnsupportedFeature(f"an empty {kind}")
    disc = discriminant_size(len(labels))
    align = max(disc, _max_case_align(payloads))
    size = align_to(disc, _max_case_align(payloads))
    size += max((p.size for p in payloads if p is not None), default=0)
    joined: list[str] = []
    for p in payloads:
        for i, t in enumerate(p.flat if p is not None else ()):
            if i < len(joined):
                joined[i] = join(joined[i], t)
            else:
                joined.append(t)
    return Shape(kind, align, align_to(size, align), ("i32", *joined), payloads, labels)


def _flags(labels: tuple[str, ...]) -> Shape:
    if not 0 < len(labels) <= MAX_FLAGS:
        raise UnsupportedFeature(f"flags with {len(labels)} labels (1 to {MAX_FLAGS})")
    size = 1 if len(labels) <= 8 else 2 if len(labels) <= 16 else 4
    return Shape("flags", size, size, ("i32",), (), labels)


def shape_of(t: ValType | None, types: TypeSpace, cache: dict[int, Shape] | None = None
             ) -> Shape | None:
    """The shape of ``t`` (None stays None: a missing payload or result)."""
    if t is None:
        return None
    return _shape(t, types, {} if cache is None else cache)


def _shape(t: ValType, types: TypeSpace, cache: dict[int, Shape]) -> Shape:
    if isinstance(t, PrimValType):
        return _prim(t)
    found = cache.get(t)
    if found is None:
        found = cache[t] = _defined(types.value_type(t), types, cache)
    return found


def _prim(t: PrimValType) -> Shape:
    if t is PrimValType.STRING:
        return Shape("string", 4, 8, ("i32", "i32"))
    size, flat = _PRIMS[t]
    return Shape(t.value, size, size, (flat,))


def _defined(d: DefValType, types: TypeSpace, cache: dict[int, Shape]) -> Shape:
    def sub(t: ValType) -> Shape:
        return _shape(t, types, cache)

    def maybe(t: ValType | None) -> Shape | None:
        return None if t is None else _shape(t, types, cache)

    match d:
        case PrimValType():
            return _prim(d)
        case ListType(t):
            return Shape("list", 4, 8, ("i32", "i32"), (sub(t),))
        case RecordType(fields):
            if not fields:
                raise UnsupportedFeature("an empty record")
            return _record("record", tuple(sub(f.t) for f in fields),
                           tuple(f.label for f in fields))
        case TupleType(ts):
            if not ts:
                raise UnsupportedFeature("an empty tuple")
            return _record("tuple", tuple(sub(e) for e in ts), ())
        case VariantType(cases):
            return _variant("variant", tuple(maybe(c.t) for c in cases),
                            tuple(c.label for c in cases))
        case EnumType(labels):
            return _variant("enum", (None,) * len(labels), labels)
        case OptionType(t):
            return _variant("option", (None, sub(t)), ("none", "some"))
        case ResultType(ok, error):
            return _variant("result", (maybe(ok), maybe(error)), ("ok", "error"))
        case FlagsType(labels):
            return _flags(labels)
        case OwnType(resource):
            return Shape("own", 4, 4, ("i32",), resource=types.resource(resource))
        case BorrowType(resource):
            return Shape("borrow", 4, 4, ("i32",), resource=types.resource(resource))
    raise UnsupportedFeature(f"value type {d!r}")


def tuple_shape(shapes: tuple[Shape, ...]) -> Shape:
    """The tuple a function's spilled parameters (or results) are stored as."""
    return _record("tuple", shapes, ())
