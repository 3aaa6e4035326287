"""The canonical ABI: values through real components, against wasmtime's component API.

Each component's core code does the guest side of the ABI by hand (see ``canonkit``); virtwasi
lowers, lifts and runs post-return around wasmtime's core API, and wasmtime's component API
runs the same component as the oracle: same values, same ``realloc`` calls, same traps.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from typing import Any

import pytest
import wasmtime
from canonkit import (
    ENCODINGS,
    ENGINE,
    Bump,
    Oracle,
    Ours,
    Table,
    echo_component,
    from_oracle,
    random_type,
    random_value,
    to_oracle,
)
from componentkit import componentize, from_wit
from conftest import FIXTURES

from virtwasi.component import Sort, read_component
from virtwasi.component.canonical import (
    CallContext,
    Canonical,
    Err,
    Ok,
    Some,
    Trap,
    Variant,
)
from virtwasi.component.layout import MAX_FLAT_PARAMS, LocalTypes
from virtwasi.component.model import (
    CanonLift,
    CanonLower,
    CoreExportAlias,
    CoreInlineExports,
    CoreInstantiate,
    CoreModule,
    ExportAlias,
    ExportDecl,
    Import,
    StringEncoding,
)
from virtwasi.component.types import (
    BorrowType,
    CoreFuncType,
    DefValType,
    EnumType,
    FieldType,
    FuncType,
    ListType,
    OwnType,
    PrimValType,
    RecordType,
)

REC = ("record", [("a", "u8"), ("b", "string"), ("c", ("list", "f32"))])
VAR = ("variant", [("x", "u64"), ("y", "f32"), ("z", None), ("w", "string")])
KINDS: list[tuple[Any, list[Any]]] = [
    ("bool", [True, False]),
    ("s8", [-128, 127]), ("u8", [0, 255]), ("s16", [-32768, 32767]), ("u16", [65535]),
    ("s32", [-(1 << 31), (1 << 31) - 1]), ("u32", [0, (1 << 32) - 1]),
    ("s64", [-(1 << 63), (1 << 63) - 1]), ("u64", [(1 << 64) - 1]),
    ("f32", [1.5, -0.0, math.inf]), ("f64", [math.pi, -math.inf, 5e-324]),
    ("char", ["a", "\xe9", "\u2603", "\U0001f600"]),
    ("string", ["", "ascii", "latin \xe9\xff", "snow \u2603", "\U0001f600 astral", "\0nul"]),
    (("list", "u8"), [b"", b"\x00\xffbytes"]),
    (("list", "u32"), [[], [0, (1 << 32) - 1, 7]]),
    (("list", "string"), [["a", "\u2603", ""]]),
    (("list", "bool"), [[True, False, True]]),
    (("list", "char"), [["x", "\U0001f600"]]),
    (("list", ("list", "s16")), [[[1, -2], [], [-32768]]]),
    (("list", "s8"), [[-128, 0, 127]]), (("list", "s64"), [[-(1 << 63), 1]]),
    (("list", "f32"), [[0.5, -(2.0 ** 100)]]), (("list", "f64"), [[1e300, -0.0]]),
    (("list", ("record", [("a", "u8"), ("b", "u64"), ("c", "u16")])),
     [[{"a": 1, "b": 2, "c": 3}, {"a": 255, "b": (1 << 64) - 1, "c": 65535}]]),
    # the largest case is not the most aligned one: size = 4 (case alignment) + 5, then 12
    (("list", ("variant", [("a", "u32"), ("b", ("tuple", ["u8"] * 5))])),
     [[Variant("a", 7), Variant("b", (1, 2, 3, 4, 5))]]),
    (("list", ("variant", [("i", "s32"), ("f", "f32"), ("d", "f64"), ("l", "s64")])),
     [[Variant("i", -1), Variant("f", -0.5), Variant("d", 1e-300), Variant("l", -2)]]),
    (("tuple", [("variant", [("i", "s32"), ("f", "f32"), ("d", "f64"), ("l", "s64")])] * 2),
     [(Variant("i", -1), Variant("f", 1.5)), (Variant("d", 2.5), Variant("l", -(1 << 63)))]),
    (REC, [{"a": 3, "b": "x\u2603", "c": [1.5, -2.0]}]),
    (("tuple", ["u8", "string", "f64"]), [(1, "t", 2.5)]),
    (("tuple", ["u64"] * 17), [tuple(range(17))]),
    (VAR, [Variant("x", 1 << 63), Variant("y", 0.25), Variant("z"), Variant("w", "\xe9")]),
    (("enum", ["red", "green", "blue"]), ["blue", "red"]),
    # 256 cases fit a u8 discriminant, 257 take a u16: the u8 after it moves
    (("tuple", [("enum", [f"c{i}" for i in range(256)]), "u8"]), [("c255", 7)]),
    (("tuple", [("enum", [f"c{i}" for i in range(257)]), "u8"]), [("c256", 7), ("c1", 2)]),
    (("option", "u32"), [None, 7]),
    (("option", "string"), [None, "some"]),
    (("option", ("option", "u32")), [None, Some(None), Some(5)]),
    (("result", "string", "u32"), [Ok("fine"), Err(404)]),
    (("result", None, "string"), [Ok(), Err("bad")]),
    (("result", "f32", None), [Ok(2.0), Err()]),
    (("result", None, None), [Ok(), Err()]),
    (("flags", ["a", "b", "c"]), [set(), {"a", "c"}]),
    (("tuple", [("flags", [f"f{i}" for i in range(8)]), "u8"]), [({"f0", "f7"}, 9)]),
    (("tuple", [("flags", [f"f{i}" for i in range(16)]), "u8"]), [({"f15"}, 9)]),
    (("flags", [f"f{i}" for i in range(17)]), [{"f0", "f16"}]),
    (("flags", [f"f{i}" for i in range(32)]), [{f"f{i}" for i in range(32)}]),
]


def _name(t: Any) -> str:
    """A short test id for type ``t``."""
    if t is None or isinstance(t, str):
        return t or "_"
    kind = t[0]
    if kind in ("enum", "flags"):
        return f"{kind}{len(t[1])}"
    if kind in ("record", "variant"):
        parts = [_name(e) for _, e in t[1]]
    else:
        parts = [_name(e) for e in (t[1] if kind == "tuple" else t[1:])]
    return f"{kind}<{','.join(parts)}>"


def _run_both(t: Any, values: list[Any], encoding: str) -> None:
    binary = echo_component(t, encoding=encoding)
    ours, oracle = Ours(binary), Oracle(binary)
    wt = oracle.param_type()
    for v in values:
        assert ours.call("echo", v) == v
        assert from_oracle(wt, oracle.call("echo", to_oracle(wt, v))) == v
    assert ours.received == values
    assert [from_oracle(wt, x) for x in oracle.received] == values
    # The guest's allocator saw the same calls, in the same order, from both; and both
    # wrote the same bytes: core values, layouts, padding.
    assert ours.call("realloc-log") == oracle.call("realloc-log")
    assert ours.call("dump") == oracle.call("dump")


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(("t", "values"), KINDS, ids=[_name(t) for t, _ in KINDS])
def test_each_kind_round_trips_as_wasmtime_does(t: Any, values: list[Any], encoding: str
                                                ) -> None:
    _run_both(t, values, encoding)


def test_random_types_agree_with_wasmtime() -> None:
    rng = random.Random(20260)
    for _ in range(24):
        t = random_type(rng)
        values = [random_value(rng, t) for _ in range(3)]
        _run_both(t, values, rng.choice(ENCODINGS))


def test_values_larger_than_the_memory_grow_it_while_they_are_lowered() -> None:
    text = "\u2603 snow " * 30_000  # 330 KB in UTF-8, 660 KB in UTF-16: memory is 64 KiB
    for encoding in ENCODINGS:
        binary = echo_component("string", encoding=encoding)
        ours, oracle = Ours(binary), Oracle(binary)
        assert ours.call("echo", text) == oracle.call("echo", text) == text
        assert ours.call("realloc-log") == oracle.call("realloc-log")
        assert ours.memory.size(ours.store) > 5
    blob = bytes(range(256)) * 1024
    ours = Ours(echo_component(("list", "u8")))
    assert ours.call("echo", blob) == blob  # wasmtime-py would take seconds: one element at a time
    assert ours.received == [blob] and ours.memory.size(ours.store) > 4


def test_parameters_spill_past_sixteen_core_values_through_realloc() -> None:
    t = ("tuple", ["u64"] * 17)
    ours = Ours(echo_component(t))
    abi = ours.abi("echo")
    assert len(abi.flat_params) == 17 > MAX_FLAT_PARAMS
    assert abi.core_type("lift").params == abi.core_type("lift").results  # one i32 each
    assert ours.call("echo", tuple(range(17))) == tuple(range(17))
    log = ours.call("realloc-log")
    assert log[:4] == [0, 0, 8, 136]  # the arguments tuple, allocated by the caller


def test_post_return_runs_once_after_the_result_is_lifted() -> None:
    ours = Ours(echo_component("string"))
    wipe, posts = ours.core["wipe"], ours.core["posts"]
    assert isinstance(wipe, wasmtime.Global) and isinstance(posts, wasmtime.Global)
    wipe.set_value(ours.store, wasmtime.Val.i32(1))  # post-return zeroes the (pointer, length)
    assert ours.call("echo", "abc") == "abc"
    assert posts.value(ours.store) == 1


# -- values the guest made ------------------------------------------------------------------

def _make(t: Any, body: str, data: bytes = b"", encoding: str = "utf8") -> tuple[Any, Any]:
    """``make``'s value from ours, and from wasmtime (or the exception each raised)."""
    binary = echo_component(t, make=body, data=data, encoding=encoding)
    ours, oracle = Ours(binary), Oracle(binary)
    results: list[Any] = []
    runs: list[Callable[[], Any]] = [
        lambda: ours.call("make"),
        lambda: from_oracle(oracle.func("make").type(oracle.store).result, oracle.call("make"))]
    for run in runs:
        try:
            results.append(run())
        except (Trap, wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            results.append(exc)
    return results[0], results[1]


def _pair(ptr: int, length: int) -> bytes:
    return struct.pack("<II", ptr, length)


def test_a_record_the_guest_built_lifts_as_wasmtime_lifts_it() -> None:
    # record {a: u8, b: string, c: list<f32>} at 4096 (20 bytes), its string at 4116 and
    # its floats at 4120
    data = (bytes([7, 0, 0, 0]) + _pair(4116, 3) + _pair(4120, 2) + b"h\xc3\xa9\0"
            + struct.pack("<ff", 0.5, math.nan))
    ours, theirs = _make(REC, "(i32.const 4096)", data)
    assert ours == {"a": 7, "b": "h\xe9", "c": [0.5, ours["c"][1]]}
    assert math.isnan(ours["c"][1]) and math.isnan(theirs["c"][1])
    assert ours["b"] == theirs["b"] and ours["a"] == theirs["a"]


@pytest.mark.parametrize(("t", "core", "expected"), [
    ("bool", "(i32.const 2)", True),
    ("u8", "(i32.const 0x1ff)", 0xFF),
    ("s8", "(i32.const 0xff)", -1),
    ("u16", "(i32.const -1)", 0xFFFF),
    ("flags3", "(i32.const 0xff)", {"a", "b", "c"}),  # bits past the labels are ignored
])
def test_core_values_are_read_as_the_spec_reads_them(t: str, core: str, expected: Any
                                                     ) -> None:
    ty = ("flags", ["a", "b", "c"]) if t == "flags3" else t
    ours, theirs = _make(ty, core)
    assert ours == theirs == expected


@pytest.mark.parametrize(("t", "core"), [
    ("f32", "(f32.reinterpret_i32 (i32.const 0x7fc00001))"),
    ("f32", "(f32.reinterpret_i32 (i32.const 0xffbfffff))"),
    ("f64", "(f64.reinterpret_i64 (i64.const 0x7ff0000000000001))"),
])
def test_a_nan_is_lifted_canonical(t: str, core: str) -> None:
    ours, theirs = _make(t, core)
    assert math.isnan(ours) and math.isnan(theirs)
    assert struct.pack("<d", ours) == struct.pack("<d", math.nan)  # 0x7ff8000000000000


def test_variant_slots_wider_than_the_case_are_wrapped_and_reinterpreted() -> None:
    # variant {a(u32), b(f32), c(s64)} flattens to (i32, i64): a's u32 and b's f32 bits ride
    # in the i64, whose high bits a guest may leave set; a lift keeps the low 32 bits.
    t = ("variant", [("a", "u32"), ("b", "f32"), ("c", "s64")])
    ours = Ours(echo_component(t))
    abi = ours.abi("echo").params[0]
    assert abi.shape.flat == ("i32", "i64")
    cx = ours.context()
    assert abi.lift_flat(cx, [0, (0xABC << 32) | 5], 0) == Variant("a", 5)
    assert abi.lift_flat(cx, [0, -1], 0) == Variant("a", 0xFFFF_FFFF)  # as the engine signs it
    assert abi.lift_flat(cx, [1, (1 << 40) | 0x3FC0_0000], 0) == Variant("b", 1.5)
    assert abi.lift_flat(cx, [2, -2], 0) == Variant("c", -2)
    out: list[Any] = []
    abi.lower_flat(cx, Variant("b", 1.5), out)
    assert out == [1, 0x3FC0_0000]


@pytest.mark.parametrize(("cases", "size"), [(1, 1), (256, 1), (257, 2), (65536, 2),
                                             (65537, 4)])
def test_a_discriminant_is_the_smallest_integer_that_counts_the_cases(cases: int, size: int
                                                                       ) -> None:
    canon = Canonical(Space([EnumType(tuple(f"c{i}" for i in range(cases)))]))
    shape = canon.shape(0)
    assert (shape.size, shape.align, shape.flat) == (size, size, ("i32",))


TRAPS = [
    ("string", "(i32.const 4096)", _pair(0xFFFF_FF00, 16), "utf8", "out of bounds"),
    (("list", "u32"), "(i32.const 4096)", _pair(4097, 1), "utf8", "not aligned to 4"),
    ("string", "(i32.const 4096)", _pair(4104, 2) + b"\xff\xfe", "utf8", "not valid utf-8"),
    ("string", "(i32.const 4096)", _pair(4104, 1) + b"\x00\xd8", "utf16", "not valid utf-16"),
    ("string", "(i32.const 4096)", _pair(4105, 1 | 1 << 31) + b"\0\x00\xd8", "latin1+utf16",
     "not aligned to 2"),
    ("char", "(i32.const 0xd800)", b"", "utf8", "not a Unicode scalar"),
    ("char", "(i32.const 0x110000)", b"", "utf8", "not a Unicode scalar"),
    (("enum", ["a", "b"]), "(i32.const 2)", b"", "utf8", "discriminant 2 is out of range"),
    (("option", "string"), "(i32.const 4096)", bytes([3]) + bytes(11), "utf8",
     "discriminant 3 is out of range"),
    (("list", "u64"), "(i32.const 4096)", _pair(4096, 0x7FFF_FFFF), "utf8", "out of bounds"),
    (("list", "string"), "(i32.const 4096)", _pair(4096, 0xFFFF_FFFF), "utf8", "out of bounds"),
    (("result", "u32", "string"), "(i32.const 4098)", b"", "utf8", "not aligned to 4"),
]


@pytest.mark.parametrize(("t", "body", "data", "encoding", "reason"), TRAPS,
                         ids=[f"{r}-{t}" for t, _, _, _, r in TRAPS])
def test_a_guest_breaking_a_rule_traps_with_the_reason(t: Any, body: str, data: bytes,
                                                       encoding: str, reason: str) -> None:
    ours, theirs = _make(t, body, data, encoding)
    assert isinstance(ours, Trap), ours
    assert reason.lower() in str(ours).lower()
    assert isinstance(theirs, (wasmtime.WasmtimeError, wasmtime.Trap)), theirs


def test_a_realloc_answer_out_of_bounds_traps_before_any_write() -> None:
    ours = Ours(echo_component("string"))
    abi = ours.abi("echo")
    view = memoryview(bytearray(64))
    for answer in (60, 0xFFFF_FFF0):
        cx = CallContext(lambda: view, lambda *_, at=answer: at)
        with pytest.raises(Trap, match=r"realloc's answer for a string of 10 bytes at .* is out"):
            abi.lower_params(cx, ["0123456789"])
        assert bytes(view) == bytes(64)
    cx = CallContext(lambda: view, lambda *_: 3)
    with pytest.raises(Trap, match="not aligned to 2"):
        ours.canon.func(abi_type("string"), StringEncoding.UTF16).lower_params(cx, ["ab"])


def abi_type(name: str) -> FuncType:
    return FuncType((("x", PrimValType(name)),), None)


@pytest.mark.parametrize(("t", "value", "error"), [
    ("u8", 256, ValueError), ("s32", -(1 << 31) - 1, ValueError), ("u32", "1", TypeError),
    ("char", "ab", TypeError), ("char", "\ud800", ValueError), ("string", 5, TypeError),
    ("f32", 1e300, ValueError),
    (("enum", ["a"]), "b", ValueError), (("flags", ["a"]), {"z"}, ValueError),
    (VAR, Variant("nope"), ValueError), (("result", None, None), None, TypeError),
    (REC, {"a": 1}, ValueError), (("list", "u8"), [1, 300], ValueError),
    (("list", "u16"), [1, 1 << 16], ValueError), (("list", "s64"), [1, "2"], TypeError),
    (("list", "f32"), [0.5, 1e300], ValueError), (("list", "char"), ["\ud800"], ValueError),
])
def test_a_host_value_that_does_not_fit_is_refused_before_the_call(t: Any, value: Any,
                                                                   error: type) -> None:
    ours = Ours(echo_component(t))
    with pytest.raises(error):
        ours.call("echo", value)
    assert ours.received == [] and ours.reallocs == 0  # nothing reached the guest


# -- resources ------------------------------------------------------------------------------

OWN = ("own", "r")


@pytest.mark.parametrize(("t", "value"), [
    (OWN, 42), (("tuple", [OWN, "string"]), (42, "x")),
    (("record", [("h", OWN), ("n", "u32")]), {"h": 42, "n": 5}),
    (("option", OWN), 42), (("option", OWN), None), (("list", OWN), [42, 43]),
    (("result", OWN, "string"), Ok(42)), (("result", OWN, "string"), Err("none")),
], ids=lambda x: _name(x) if isinstance(x, tuple) and x and isinstance(x[0], str) else None)
def test_owned_handles_move_through_the_guest_as_wasmtime_moves_them(t: Any, value: Any
                                                                     ) -> None:
    binary = echo_component(t)
    table = Table()
    ours, oracle = Ours(binary, resources=table), Oracle(binary)
    assert ours.call("echo", value) == value
    assert ours.received == [value]
    assert table.slots == {}  # each handle the guest was given was taken back out
    wt = oracle.param_type()
    assert from_oracle(wt, oracle.call("echo", to_oracle(wt, value)), oracle.store) == value
    # The guest saw the same handle indices, and wrote the same bytes, under both.
    assert ours.call("dump") == oracle.call("dump")


class Space:
    """Types numbered by position; resource types are the strings in the list."""

    def __init__(self, defs: list[DefValType | str]) -> None:
        self.defs = defs

    def resolve(self, index: int) -> tuple[DefValType, Space]:
        found = self.defs[index]
        assert not isinstance(found, str)
        return found, self

    def resource(self, index: int) -> object:
        return self.defs[index]


def test_handles_cross_through_the_callbacks_in_flat_values_and_in_memory() -> None:
    canon = Canonical(Space([
        "file", "dir", OwnType(0), BorrowType(1),
        RecordType((FieldType("f", 2), FieldType("d", 3))),
        ListType(4),
    ]))
    ft = FuncType((("x", 4), ("xs", 5)), 4)
    abi = canon.func(ft)
    bump = Bump()
    table = Table()
    cx = CallContext(bump.view, bump.realloc, table)
    args = [{"f": "F1", "d": "D1"}, [{"f": "F2", "d": "D2"}]]
    flat = abi.lower_params(cx, args)
    assert {i: v for i, (_, v, _) in table.slots.items()} == {1: "F1", 2: "D1", 3: "F2", 4: "D2"}
    assert flat[:2] == [1, 2]
    assert abi.lift_params(cx, flat) == args
    assert table.slots == {2: ("dir", "D1", False), 4: ("dir", "D2", False)}
    assert table.lent == ["D1", "D2"]
    with pytest.raises(Trap, match="no handle 1"):
        abi.lift_params(cx, flat)  # an owned handle moves out once
    with pytest.raises(Trap, match="no handle callbacks"):
        abi.lower_params(CallContext(bump.view, bump.realloc), args)


# -- round trips ----------------------------------------------------------------------------

def _space_of(t: Any, defs: list[Any]) -> Any:
    """Our ``t`` as a types.py definition list entry (an index, or a primitive)."""
    from virtwasi.component import types as ty
    if isinstance(t, str):
        return PrimValType(t)
    kind = t[0]
    made: Any
    if kind == "list":
        made = ty.ListType(_space_of(t[1], defs))
    elif kind == "option":
        made = ty.OptionType(_space_of(t[1], defs))
    elif kind == "tuple":
        made = ty.TupleType(tuple(_space_of(e, defs) for e in t[1]))
    elif kind == "result":
        made = ty.ResultType(*(None if e is None else _space_of(e, defs) for e in t[1:]))
    elif kind == "record":
        made = ty.RecordType(tuple(ty.FieldType(n, _space_of(e, defs)) for n, e in t[1]))
    elif kind == "variant":
        made = ty.VariantType(tuple(ty.CaseType(n, None if e is None else _space_of(e, defs))
                                    for n, e in t[1]))
    elif kind == "enum":
        made = ty.EnumType(tuple(t[1]))
    else:
        made = ty.FlagsType(tuple(t[1]))
    defs.append(made)
    return len(defs) - 1


def test_random_values_of_random_types_survive_lower_then_lift() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        t = random_type(rng, depth=4)
        defs: list[Any] = []
        index = _space_of(t, defs)
        canon = Canonical(Space(defs))
        bump = Bump()
        for encoding in StringEncoding:
            abi = canon.value(index, encoding)
            for _ in range(3):
                v = random_value(rng, t)
                cx = CallContext(bump.view, bump.realloc)
                out: list[Any] = []
                abi.lower_flat(cx, v, out)
                assert len(out) == len(abi.shape.flat)
                assert abi.lift_flat(cx, out, 0) == v
                at = bump.realloc(0, 0, abi.shape.align, abi.shape.size)
                cx.span(at, abi.shape.size, abi.shape.align, "the value")  # as calls check
                abi.store(cx, v, at)
                assert abi.load(cx, at) == v
                checked += 1
    assert checked == 2700


# -- real components: the core signatures wit-component gave them ---------------------------

def _func_type(space: LocalTypes, index: int) -> tuple[FuncType, LocalTypes]:
    """The type of func ``index`` of a component (its import's, its imported instance's
    export's, or its lift's), and the space its indices are read in."""
    entry = space.scope.funcs[index]
    if isinstance(entry, ExportAlias):
        space, at = space.instance_export(entry.instance, entry.name, Sort.FUNC)
        entry = space.scope.funcs[at]
    assert isinstance(entry, (Import, ExportDecl, CanonLift)), entry
    type_index = entry.type_index if isinstance(entry, CanonLift) else entry.t.type_index
    assert type_index is not None
    space, at = space.definition(type_index)
    found = space.scope.types[at]
    assert isinstance(found, FuncType), found
    return found, space


def _signature(t: CoreFuncType | wasmtime.FuncType) -> tuple[list[str], list[str]]:
    if isinstance(t, CoreFuncType):
        return [p.value for p in t.params], [r.value for r in t.results]
    return [str(p) for p in t.params], [str(r) for r in t.results]


def _check_core_signatures(binary: bytes) -> tuple[int, int]:
    """Every canon lower's and lift's core type as virtwasi flattens its function type,
    against the core module's own import or export; how many of each were compared."""
    component = read_component(binary)
    space = LocalTypes(component)
    lowers = lifts = 0
    for instance in component.core_instances:
        if not isinstance(instance, CoreInstantiate):
            continue
        module = component.core_modules[instance.module]
        assert isinstance(module, CoreModule)
        args = {arg.name: component.core_instances[arg.instance] for arg in instance.args}
        for imported in wasmtime.Module(ENGINE, module.data).imports:
            given = args.get(imported.module)
            if not isinstance(given, CoreInlineExports):
                continue
            for export in given.exports:
                lower = component.core_funcs[export.index]
                if export.name != imported.name or not isinstance(lower, CanonLower):
                    continue
                ft, where = _func_type(space, lower.func)
                abi = Canonical(where).func(ft, lower.options.encoding)
                assert isinstance(imported.type, wasmtime.FuncType)
                assert _signature(abi.core_type("lower")) == _signature(imported.type), ft
                lowers += 1
    for index, lift in enumerate(component.funcs):
        if not isinstance(lift, CanonLift):
            continue
        alias = component.core_funcs[lift.core_func]
        assert isinstance(alias, CoreExportAlias)
        instance = component.core_instances[alias.instance]
        assert isinstance(instance, CoreInstantiate)
        module = component.core_modules[instance.module]
        assert isinstance(module, CoreModule)
        exported = {e.name: e.type for e in wasmtime.Module(ENGINE, module.data).exports}
        ft, where = _func_type(space, index)
        abi = Canonical(where).func(ft, lift.options.encoding)
        core = exported[alias.name]
        assert isinstance(core, wasmtime.FuncType)
        assert _signature(abi.core_type("lift")) == _signature(core), ft
        lifts += 1
    return lowers, lifts


@pytest.mark.parametrize("encoding", ["utf8", "utf16", "compact-utf16"])
def test_every_wit_kind_flattens_as_wit_component_flattens_it(encoding: str, tmp_path: Any
                                                              ) -> None:
    binary = from_wit(FIXTURES / "components" / "shapes.wit", tmp_path / "c.wasm", encoding)
    # imports: constructor, draw, take, area, log; exports: the same four and run
    assert _check_core_signatures(binary) == (5, 5)


def test_the_wasi_interfaces_flatten_as_the_preview1_adapter_calls_them(tmp_path: Any) -> None:
    binary = componentize(FIXTURES / "hello.wasm", tmp_path / "c.wasm")
    lowers, lifts = _check_core_signatures(binary)
    assert (lowers, lifts) == (23, 1)  # jco's adapter, as pinned: 23 WASI functions, one run
