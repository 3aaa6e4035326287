"""Components that pass one value type back and forth, run by virtwasi and by wasmtime.

A type is written as a small expression: a primitive's name (``"u8"``, ``"string"``...) or
``("list", t)``, ``("option", t)``, ``("tuple", [t...])``, ``("result", ok, err)``,
``("record", [(name, t)...])``, ``("variant", [(name, t or None)...])``, ``("enum",
[names])``, ``("flags", [names])``, and ``("own", "r")`` for the resource type ``r`` every
component imports. :func:`echo_component` builds a component (with
``wasm-tools parse``) whose core code does the guest side of the ABI by hand:

- ``echo(x: T) -> T`` passes its core arguments to the imported ``host-echo(x: T) -> T``
  and returns what that left (its core result, or the return area it gave it); its
  post-return counts calls in the global ``posts`` and, once the global ``wipe`` is set,
  zeroes the return area;
- ``make() -> T`` returns whatever core values the test wrote, over data it put in memory;
- ``realloc-log() -> list<u32>`` is every call of the guest's ``realloc`` (old pointer, old
  size, alignment, size); ``reset()`` frees everything and empties the log;
- ``dump() -> list<u8>`` is the memory from :data:`FLATS` to the end of the heap: the core
  arguments ``echo`` last received and the core result ``host-echo`` last gave (8 bytes
  each, from :data:`FLATS`), the test's data, and every value lowered into the heap.

So two runs whose dumps are equal wrote the same bytes: the same core values, the same
layouts, the same padding.

:class:`Ours` runs it with wasmtime's core API and virtwasi's canonical ABI (the host import
lifts and lowers with it too); :class:`Oracle` runs it with wasmtime's component API.
:func:`to_oracle` and :func:`from_oracle` translate values between the two mappings.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from typing import Any

import wasmtime
import wasmtime.component as wc
from componentkit import parse_wat

from virtwasi.component import read_component
from virtwasi.component.canonical import (
    CallContext,
    Canonical,
    Err,
    FuncABI,
    Ok,
    ResourceCalls,
    Some,
    Trap,
    Variant,
)
from virtwasi.component.layout import LocalTypes
from virtwasi.component.model import CanonLift, CoreModule, StringEncoding
from virtwasi.component.types import FuncType
from virtwasi.engine.raw import memory_view

T = Any
PRIMS = ("bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32", "f64", "char",
         "string")
HEAP = 8192
RESOURCE = 7
"""The host's number for the resource type ``r`` in wasmtime-py's component API."""
FLATS = 2560
"""Where ``echo`` keeps its core arguments and ``host-echo``'s core result."""
DATA = 4096
RETURN_AREA = 512
"""What ``echo`` allocates for ``host-echo``'s result when it does not fit a core value."""
ENGINE = wasmtime.Engine()


# -- types in WAT -----------------------------------------------------------------------------

class _Types:
    """Type definitions for one side: named kinds imported (or exported) as the component
    model requires of the types of imported (or exported) functions."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.lines: list[str] = []

    def ref(self, t: T) -> str:
        if isinstance(t, str):
            return t
        kind = t[0]
        if kind == "own":
            return self._define("(own $r)", named=False)
        if kind in ("list", "option"):
            return self._define(f"({kind} {self.ref(t[1])})", named=False)
        if kind == "tuple":
            return self._define(f"(tuple {' '.join(self.ref(e) for e in t[1])})", named=False)
        if kind == "result":
            ok = "" if t[1] is None else f" {self.ref(t[1])}"
            err = "" if t[2] is None else f" (error {self.ref(t[2])})"
            return self._define(f"(result{ok}{err})", named=False)
        if kind == "record":
            fields = " ".join(f'(field "{n}" {self.ref(f)})' for n, f in t[1])
            return self._define(f"(record {fields})", named=True)
        if kind == "variant":
            cases = " ".join(f'(case "{n}")' if c is None else f'(case "{n}" {self.ref(c)})'
                             for n, c in t[1])
            return self._define(f"(variant {cases})", named=True)
        names = " ".join(f'"{n}"' for n in t[1])
        return self._define(f"({kind} {names})", named=True)

    def _define(self, body: str, named: bool) -> str:
        n = len(self.lines)
        name = f"${self.side}{n}"
        self.lines.append(f"(type {name} {body})")
        if not named:
            return name
        if self.side == "i":
            self.lines.append(f'(import "t{n}" (type {name}n (eq {name})))')
        else:
            self.lines.append(f'(export {name}n "t{n}" (type {name}))')
        return name + "n"


def flat(t: T) -> list[str]:
    """The core types ``t`` flattens to (the validator checks this against the spec)."""
    if isinstance(t, str):
        if t == "string":
            return ["i32", "i32"]
        return {"s64": ["i64"], "u64": ["i64"], "f32": ["f32"], "f64": ["f64"]}.get(t, ["i32"])
    kind = t[0]
    if kind == "list":
        return ["i32", "i32"]
    if kind in ("enum", "flags", "own"):
        return ["i32"]
    if kind == "tuple":
        return [c for e in t[1] for c in flat(e)]
    if kind == "record":
        return [c for _, e in t[1] for c in flat(e)]
    payloads = {"option": lambda: [None, t[1]], "result": lambda: [t[1], t[2]],
                "variant": lambda: [c for _, c in t[1]]}[kind]()
    joined: list[str] = []
    for p in payloads:
        for i, c in enumerate(flat(p) if p is not None else []):
            if i == len(joined):
                joined.append(c)
            elif joined[i] != c:
                joined[i] = "i32" if {joined[i], c} == {"i32", "f32"} else "i64"
    return ["i32", *joined]


def _sig(params: Sequence[str], results: Sequence[str]) -> str:
    p = f"(param {' '.join(params)})" if params else ""
    r = f"(result {' '.join(results)})" if results else ""
    return f"{p} {r}"


LIBC = """
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const {heap}))
    (global $logn (mut i32) (i32.const 0))
    (func (export "realloc") (param $old i32) (param $olds i32) (param $align i32)
                             (param $size i32) (result i32)
      (local $p i32) (local $at i32)
      (if (i32.lt_u (global.get $logn) (i32.const 127)) (then
        (local.set $at (i32.add (i32.const 32) (i32.shl (global.get $logn) (i32.const 4))))
        (i32.store (local.get $at) (local.get $old))
        (i32.store offset=4 (local.get $at) (local.get $olds))
        (i32.store offset=8 (local.get $at) (local.get $align))
        (i32.store offset=12 (local.get $at) (local.get $size))
        (global.set $logn (i32.add (global.get $logn) (i32.const 1)))))
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))) (then
        (drop (memory.grow (i32.sub (i32.add (i32.shr_u (global.get $heap) (i32.const 16))
                                             (i32.const 1))
                                    (memory.size))))))
      (memory.copy (local.get $p) (local.get $old)
        (select (local.get $olds) (local.get $size) (i32.lt_u (local.get $olds) (local.get $size))))
      (local.get $p))
    (func (export "log") (result i32)
      (i32.store (i32.const 16) (i32.const 32))
      (i32.store (i32.const 20) (i32.shl (global.get $logn) (i32.const 2)))
      (i32.const 16))
    (func (export "dump") (result i32)
      (i32.store (i32.const 24) (i32.const {flats}))
      (i32.store (i32.const 28) (i32.sub (global.get $heap) (i32.const {flats})))
      (i32.const 24))
    (func (export "reset")
      (global.set $heap (i32.const {heap}))
      (global.set $logn (i32.const 0)))
    {data})
"""


def echo_component(t: T, *, encoding: str = "utf8", make: str = "(unreachable)",
                   data: bytes = b"") -> bytes:
    """The component of the module doc for type ``t``; ``make`` is the core body of
    ``make``, and ``data`` is put in memory at :data:`DATA`."""
    imported, exported = _Types("i"), _Types("e")
    ti, te = imported.ref(t), exported.ref(t)
    fp, fr = flat(t), flat(t)
    lift_params = fp if len(fp) <= 16 else ["i32"]
    lift_results = fr if len(fr) <= 1 else ["i32"]
    lower_params = lift_params + ([] if len(fr) <= 1 else ["i32"])
    lower_results = fr if len(fr) <= 1 else []
    gets = " ".join(f"(local.get {i})" for i in range(len(lift_params)))
    keep = " ".join(f"({c}.store (i32.const {FLATS + 8 * i}) (local.get {i}))"
                    for i, c in enumerate(lift_params))
    if len(fr) <= 1:
        local = f"(local $r {fr[0]})"
        body = (f"{keep} ({fr[0]}.store (i32.const {FLATS + 128}) (local.tee $r "
                f"(call $echo {gets}))) (local.get $r)")
    else:
        local = "(local $ret i32)"
        body = (f"{keep} (local.set $ret (call $realloc (i32.const 0) (i32.const 0) "
                f"(i32.const 8) (i32.const {RETURN_AREA}))) (call $echo {gets} (local.get $ret)) "
                "(local.get $ret)")
    # post-return counts its calls, and can wipe a return area: lifting after it sees zeros
    post = "(global.set $posts (i32.add (global.get $posts) (i32.const 1)))"
    if len(fr) > 1:
        post += " (if (global.get $wipe) (then (i64.store (local.get 0) (i64.const 0))))"
    escaped = "".join(f"\\{b:02x}" for b in data)
    opts = (f'(memory (core memory $libc "memory")) (realloc (core func $libc "realloc")) '
            f"string-encoding={encoding}")
    lines = [
        "(component", '(import "r" (type $r (sub resource)))', *imported.lines,
        f'(import "host-echo" (func $host (param "x" {ti}) (result {ti})))',
        LIBC.format(heap=HEAP, flats=FLATS,
                    data=f'(data (i32.const {DATA}) "{escaped}")' if data else ""),
        "(core instance $libc (instantiate $Libc))",
        f"(core func $lowered (canon lower (func $host) {opts}))",
        "(core module $Main",
        '  (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))',
        f'  (import "host" "echo" (func $echo {_sig(lower_params, lower_results)}))',
        '  (import "libc" "memory" (memory 1))',
        f'  (func (export "echo") {_sig(lift_params, lift_results)} {local} {body})',
        f'  (func (export "make") {_sig([], lift_results)} {make})',
        '  (global $posts (export "posts") (mut i32) (i32.const 0))',
        '  (global $wipe (export "wipe") (mut i32) (i32.const 0))',
        f'  (func (export "post") {_sig(lift_results, [])} {post}))',
        "(core instance $main (instantiate $Main (with \"libc\" (instance $libc))",
        '  (with "host" (instance (export "echo" (func $lowered))))))',
        *exported.lines,
        f'(func (export "echo") (param "x" {te}) (result {te}) (canon lift '
        f'(core func $main "echo") {opts} (post-return (core func $main "post"))))',
        f'(func (export "make") (result {te}) (canon lift (core func $main "make") {opts}))',
        '(func (export "realloc-log") (result (list u32)) (canon lift (core func $libc "log") '
        '(memory (core memory $libc "memory"))))',
        '(func (export "dump") (result (list u8)) (canon lift (core func $libc "dump") '
        '(memory (core memory $libc "memory"))))',
        '(func (export "reset") (canon lift (core func $libc "reset")))',
        ")",
    ]
    return parse_wat("\n".join(lines))


# -- the two runners --------------------------------------------------------------------------

def _signed32(v: Any, t: wasmtime.ValType) -> Any:
    if str(t) == "i32" and v >= 1 << 31:
        return v - (1 << 32)
    if str(t) == "i64" and v >= 1 << 63:
        return v - (1 << 64)
    return v


def _results(r: Any) -> list[Any]:
    return [] if r is None else list(r) if isinstance(r, list) else [r]


class Ours:
    """The component run by wasmtime's core API with virtwasi's canonical ABI on both sides."""

    def __init__(self, binary: bytes, host: Callable[[Any], Any] | None = None,
                 resources: ResourceCalls | None = None) -> None:
        self.resources = resources
        component = read_component(binary)
        self.component = component
        modules = [m for m in component.core_modules if isinstance(m, CoreModule)]
        store = self.store = wasmtime.Store(ENGINE)
        libc = wasmtime.Instance(store, wasmtime.Module(ENGINE, modules[0].data), [])
        exports = libc.exports(store)
        memory, realloc = exports["memory"], exports["realloc"]
        assert isinstance(memory, wasmtime.Memory) and isinstance(realloc, wasmtime.Func)
        self.memory = memory
        self.reallocs = 0

        def call_realloc(*args: int) -> int:
            self.reallocs += 1
            result: int = realloc(store, *args)
            return result

        self._view = memory_view(store, memory)
        self._realloc = call_realloc
        canon = Canonical(LocalTypes(component))
        self.canon = canon
        self.encoding = next(d.options.encoding for d in component.funcs
                             if isinstance(d, CanonLift) and d.options.memory is not None)
        imported = component.types[component.import_("host-echo").t.type_index or 0]
        assert isinstance(imported, FuncType)
        self.host_abi = canon.func(imported, self.encoding)
        result = self.host_abi.result
        assert result is None or result.shape.size <= RETURN_AREA, "echo's return area"
        self.received: list[Any] = []
        core = self.host_abi.core_type("lower")
        functype = wasmtime.FuncType([_valtype(t.value) for t in core.params],
                                     [_valtype(t.value) for t in core.results])

        def host_echo(*args: Any) -> Any:
            cx = self.context()
            (value,) = self.host_abi.lift_params(cx, args)
            self.received.append(value)
            answer = value if host is None else host(value)
            out = self.host_abi.lower_results(cx, answer, args)
            return _signed32(out[0], functype.results[0]) if out else None

        main = wasmtime.Instance(store, wasmtime.Module(ENGINE, modules[1].data),
                                 [realloc, wasmtime.Func(store, functype, host_echo), memory])
        self.core = main.exports(store)
        self.libc = exports

    def context(self) -> CallContext:
        return CallContext(self._view, self._realloc, self.resources)

    def abi(self, name: str) -> FuncABI:
        lift = self.component.funcs[self.component.export(name).index]
        assert isinstance(lift, CanonLift)
        ft = self.component.types[lift.type_index]
        assert isinstance(ft, FuncType)
        return self.canon.func(ft, lift.options.encoding)

    def call(self, name: str, *args: Any, core: str | None = None) -> Any:
        abi = self.abi(name)
        cx = self.context()
        target = self.core if name in ("echo", "make") else self.libc
        func = target[core or {"realloc-log": "log"}.get(name, name)]
        assert isinstance(func, wasmtime.Func)
        post = self.core["post"] if name == "echo" else None
        assert post is None or isinstance(post, wasmtime.Func)
        return abi.call(cx, lambda *flat: _results(func(self.store, *flat)), list(args),
                        None if post is None else lambda *flat: post(self.store, *flat))


def _valtype(name: str) -> wasmtime.ValType:
    return {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(),
            "f32": wasmtime.ValType.f32(), "f64": wasmtime.ValType.f64()}[name]


class Oracle:
    """The same component run by wasmtime's component API."""

    def __init__(self, binary: bytes, host: Callable[[Any], Any] | None = None) -> None:
        self.store = wasmtime.Store(ENGINE)
        self.received: list[Any] = []
        linker = wc.Linker(ENGINE)

        def host_echo(store: Any, value: Any) -> Any:
            self.received.append(value)
            return value if host is None else host(value)

        with linker.root() as root:
            root.add_resource("r", wc.ResourceType.host(RESOURCE), lambda store, rep: None)
            root.add_func("host-echo", host_echo)
        self.instance = linker.instantiate(self.store, wc.Component(ENGINE, binary))

    def func(self, name: str) -> wc.Func:
        found = self.instance.get_func(self.store, name)
        assert found is not None
        return found

    def call(self, name: str, *args: Any) -> Any:
        func = self.func(name)
        value = func(self.store, *args)
        func.post_return(self.store)
        return value

    def param_type(self) -> Any:
        return self.func("echo").type(self.store).params[0][1]


# -- values across the two mappings -----------------------------------------------------------

def _classes(t: Any) -> set[type]:
    found: set[type] = set()
    if t is None:
        found.add(object)
    else:
        t.add_classes(found)
    return found


def to_oracle(t: Any, v: Any) -> Any:
    """Our value ``v`` of wasmtime type ``t`` as wasmtime-py wants it (a handle's value is
    its representation)."""
    if isinstance(t, wc.OwnType):
        return wc.ResourceHost.own(v, RESOURCE)
    if isinstance(t, wc.RecordType):
        record = wc.Record()
        for name, ft in t.fields:
            setattr(record, name, to_oracle(ft, v[name]))
        return record
    if isinstance(t, wc.TupleType):
        return tuple(to_oracle(e, x) for e, x in zip(t.elements, v, strict=True))
    if isinstance(t, wc.ListType):
        return v if isinstance(v, bytes) else [to_oracle(t.element, x) for x in v]
    if isinstance(t, (wc.VariantType, wc.OptionType, wc.ResultType)):
        cases = t._cases()
        if isinstance(t, wc.VariantType):
            label, payload = v.case, v.value
        elif isinstance(t, wc.OptionType):
            label, payload = ("none", None) if v is None else (
                "some", v.value if isinstance(v, Some) else v)
        else:
            label, payload = ("ok" if isinstance(v, Ok) else "err"), v.value
        pt = dict(cases)[label]
        lowered = None if pt is None else to_oracle(pt, payload)
        if t._tagged():
            return wc.Variant(label, lowered)
        return lowered
    return v


def from_oracle(t: Any, v: Any, store: wasmtime.Store | None = None) -> Any:
    """wasmtime-py's value ``v`` of wasmtime type ``t`` in our mapping (a handle needs the
    ``store`` it lives in)."""
    if isinstance(t, wc.OwnType):
        assert store is not None
        return v.to_host(store).rep
    if isinstance(t, wc.RecordType):
        return {name: from_oracle(ft, getattr(v, name), store) for name, ft in t.fields}
    if isinstance(t, wc.TupleType):
        return tuple(from_oracle(e, x, store) for e, x in zip(t.elements, v, strict=True))
    if isinstance(t, wc.ListType):
        return v if isinstance(v, bytes) else [from_oracle(t.element, x, store) for x in v]
    if isinstance(t, (wc.VariantType, wc.OptionType, wc.ResultType)):
        cases = t._cases()
        if t._tagged():
            label, payload = v.tag, v.payload
        else:
            label = next(n for n, ct in cases
                         if (v is None and ct is None)
                         or (v is not None and ct is not None
                             and isinstance(v, tuple(_classes(ct)))))
            payload = v
        pt = dict(cases)[label]
        lifted = None if pt is None else from_oracle(pt, payload, store)
        if isinstance(t, wc.VariantType):
            return Variant(label, lifted)
        if isinstance(t, wc.OptionType):
            if label == "none":
                return None
            return Some(lifted) if isinstance(t.payload, wc.OptionType) else lifted
        return Ok(lifted) if label == "ok" else Err(lifted)
    return v


class Table:
    """A plain handle table, standing in for the world's: owned handles move out when lifted,
    borrows stay; a freed index is reused most recently freed first, as the spec's (and
    wasmtime's, and the world's) tables do."""

    def __init__(self) -> None:
        self.slots: dict[int, tuple[object, Any, bool]] = {}
        self.free: list[int] = []
        self.lent: list[Any] = []

    def _add(self, entry: tuple[object, Any, bool]) -> int:
        index = self.free.pop() if self.free else len(self.slots) + 1
        self.slots[index] = entry
        return index

    def lower_own(self, resource: object, value: Any) -> int:
        return self._add((resource, value, True))

    def lower_borrow(self, resource: object, value: Any) -> int:
        return self._add((resource, value, False))

    def lift_own(self, resource: object, index: int) -> Any:
        if index not in self.slots:
            raise Trap(f"no handle {index}")
        found, value, own = self.slots.pop(index)
        self.free.append(index)
        if found != resource or not own:
            raise Trap(f"handle {index} is not an owned {resource}")
        return value

    def lift_borrow(self, resource: object, index: int) -> Any:
        _, value, _ = self.slots[index]
        self.lent.append(value)
        return value


class Bump:
    """A linear memory of its own, with a bump ``realloc`` that copies as a guest's would."""

    def __init__(self, size: int = 1 << 16, start: int = 8) -> None:
        self.memory = bytearray(size)
        self.heap = start

    def view(self) -> memoryview:
        return memoryview(self.memory)

    def realloc(self, old: int, old_size: int, align: int, size: int) -> int:
        at = -(-self.heap // align) * align
        self.heap = at + size
        kept = min(old_size, size)
        self.memory[at:at + kept] = self.memory[old:old + kept]
        return at


# -- random types and values ------------------------------------------------------------------

def random_type(rng: random.Random, depth: int = 3) -> T:
    if depth == 0 or rng.random() < 0.35:
        return rng.choice(PRIMS)
    kind = rng.choice(["list", "option", "tuple", "result", "record", "variant", "enum",
                       "flags"])

    def sub() -> T:
        return random_type(rng, depth - 1)

    names = [f"n{i}" for i in range(rng.randint(1, 5))]
    if kind in ("list", "option"):
        return (kind, sub())
    if kind == "tuple":
        return ("tuple", [sub() for _ in names])
    if kind == "result":
        return ("result", sub() if rng.random() < 0.7 else None,
                sub() if rng.random() < 0.7 else None)
    if kind == "record":
        return ("record", [(n, sub()) for n in names])
    if kind == "variant":
        return ("variant", [(n, sub() if rng.random() < 0.7 else None) for n in names])
    if kind == "flags":
        return ("flags", [f"f{i}" for i in range(rng.choice([1, 3, 8, 9, 16, 17, 32]))])
    return ("enum", names)


_RANGES = {"s8": 8, "u8": 8, "s16": 16, "u16": 16, "s32": 32, "u32": 32, "s64": 64, "u64": 64}


def random_value(rng: random.Random, t: T) -> Any:
    if isinstance(t, str):
        if t == "bool":
            return rng.random() < 0.5
        if t in _RANGES:
            bits = _RANGES[t]
            low = -(1 << (bits - 1)) if t[0] == "s" else 0
            return rng.choice([low, low + (1 << bits) - 1, rng.randrange(low, low + (1 << bits))])
        if t == "f32":
            return struct.unpack("<f", struct.pack("<f", rng.uniform(-1e6, 1e6)))[0]
        if t == "f64":
            return rng.choice([0.0, -2.5, rng.uniform(-1e300, 1e300)])
        if t == "char":
            return _random_char(rng)
        return "".join(_random_char(rng) for _ in range(rng.randint(0, 6)))
    kind = t[0]
    if kind == "list":
        items = [random_value(rng, t[1]) for _ in range(rng.randint(0, 4))]
        return bytes(items) if t[1] == "u8" else items
    if kind == "option":
        if rng.random() < 0.3:
            return None
        inner = random_value(rng, t[1])
        return Some(inner) if isinstance(t[1], tuple) and t[1][0] == "option" else inner
    if kind == "tuple":
        return tuple(random_value(rng, e) for e in t[1])
    if kind == "result":
        ok = rng.random() < 0.5
        payload = t[1] if ok else t[2]
        value = None if payload is None else random_value(rng, payload)
        return Ok(value) if ok else Err(value)
    if kind == "record":
        return {n: random_value(rng, f) for n, f in t[1]}
    if kind == "variant":
        name, payload = rng.choice(t[1])
        return Variant(name, None if payload is None else random_value(rng, payload))
    if kind == "enum":
        return rng.choice(t[1])
    return {n for n in t[1] if rng.random() < 0.5}


def _random_char(rng: random.Random) -> str:
    pool = rng.choice([(0x20, 0x7E), (0xA0, 0xFF), (0x100, 0xD7FF), (0x10000, 0x10FFFF)])
    return chr(rng.randint(*pool))


ENCODINGS = [e.value for e in StringEncoding]
