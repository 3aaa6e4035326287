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
from .model import (
    EqBound,
    Export,
    ExportAlias,
    ExportDecl,
    Import,
    InstanceType,
    OuterAlias,
    Scope,
    Sort,
)
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
    """What a type index means: the questions :func:`shape_of` asks of a scope.

    A definition's own indices are read in the space where it is defined, which an alias can
    make another scope's (an instance type's, an enclosing component's): :meth:`resolve`
    says which. A space is hashable, as the key of the shapes made from it.
    """

    def resolve(self, index: int) -> tuple[DefValType, TypeSpace]:
        """The value type that ``index`` finally names, and the space of its own indices."""

    def resource(self, index: int) -> object:
        """An identity for the resource type at ``index`` (what handle callbacks receive)."""


class LocalTypes:
    """The types of a scope as far as the binary alone tells them: definitions, exports of
    them, imports bounded by ``(eq i)``, outer aliases, and aliases of the exports of
    imported instances (read in the instance type). A resource is identified by the space
    and index of its definition or import: one per type in the binary, where instantiation
    makes one per instance. Aliases of instances made inside the component need
    instantiation, and are refused here."""

    def __init__(self, scope: Scope, parent: LocalTypes | None = None) -> None:
        self.scope = scope
        self.parent = parent

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalTypes) and other.scope is self.scope

    def __hash__(self) -> int:
        return id(self.scope)

    def definition(self, index: int) -> tuple[LocalTypes, int]:
        """The space and index of the type entry that ``index`` finally names."""
        space, at = self, index
        for _ in range(_MAX_HOPS):
            entry = space.scope.types[at]
            if isinstance(entry, Export) and entry.sort is Sort.TYPE:
                at = entry.index
            elif (isinstance(entry, (Import, ExportDecl))
                  and isinstance(entry.t.bound, EqBound)):
                at = entry.t.bound.index
            elif isinstance(entry, OuterAlias) and entry.sort is Sort.TYPE:
                for _ in range(entry.count):
                    if space.parent is None:
                        raise UnsupportedFeature(f"an outer alias of type {at} past the "
                                                 "outermost scope given")
                    space = space.parent
                at = entry.index
            elif isinstance(entry, ExportAlias) and entry.sort is Sort.TYPE:
                space, at = space.instance_export(entry.instance, entry.name, Sort.TYPE)
            else:
                return space, at
        raise UnsupportedFeature(f"type {index} through more than {_MAX_HOPS} aliases")

    def instance_export(self, instance: int, name: str, sort: Sort) -> tuple[LocalTypes, int]:
        """Where the export ``name`` (of ``sort``) of imported instance ``instance`` is
        declared: its instance type's space, and its index in that type's ``sort`` space."""
        entry = self.scope.instances[instance]
        if (isinstance(entry, (Import, ExportDecl)) and entry.t.sort is Sort.INSTANCE
                and entry.t.type_index is not None):
            space, at = self.definition(entry.t.type_index)
            declared = space.scope.types[at]
            if isinstance(declared, InstanceType):
                inner = LocalTypes(declared, parent=space)
                for j, decl in enumerate(declared.space(sort)):
                    if isinstance(decl, ExportDecl) and decl.name == name:
                        return inner, j
        raise UnsupportedFeature(f"{sort.value} {name!r} of instance {instance}: only the "
                                 "exports of imported instances are known before instantiation")

    def resolve(self, index: int) -> tuple[DefValType, TypeSpace]:
        space, at = self.definition(index)
        entry = space.scope.types[at]
        if isinstance(entry, (PrimValType, ListType, RecordType, TupleType, VariantType,
                              EnumType, FlagsType, OptionType, ResultType, OwnType,
                              BorrowType)):
            return entry, space
        raise UnsupportedFeature(f"type {index} as a value type ({type(entry).__name__})")

    def resource(self, index: int) -> object:
        space, at = self.definition(index)
        entry = space.scope.types[at]
        if isinstance(entry, (ResourceType, Import, ExportDecl)):
            return (space, at)
        raise UnsupportedFeature(f"type {index} as a resource type ({type(entry).__name__})")


_MAX_HOPS = 1000


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


ShapeCache = dict[tuple[TypeSpace, int], "Shape"]


def shape_of(t: ValType | None, types: TypeSpace, cache: ShapeCache | None = None
             ) -> Shape | None:
    """The shape of ``t``, read in ``types`` (None stays None: no payload, no result)."""
    if t is None:
        return None
    return _shape(t, types, {} if cache is None else cache)


def _shape(t: ValType, types: TypeSpace, cache: ShapeCache) -> Shape:
    if isinstance(t, PrimValType):
        return _prim(t)
    found = cache.get((types, t))
    if found is None:
        defined, space = types.resolve(t)
        found = cache[(types, t)] = _defined(defined, space, cache)
    return found


def _prim(t: PrimValType) -> Shape:
    if t is PrimValType.STRING:
        return Shape("string", 4, 8, ("i32", "i32"))
    size, flat = _PRIMS[t]
    return Shape(t.value, size, size, (flat,))


def _defined(d: DefValType, types: TypeSpace, cache: ShapeCache) -> Shape:
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
