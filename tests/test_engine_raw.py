"""Raw host functions and guest memory, on real wasm modules compiled from WAT."""

from __future__ import annotations

import struct

import pytest
import wasmtime

from virtwasi.engine import HostFunc, TrapBox, define, memory_view
from virtwasi.wasi.abi import FILESTAT, Errno
from virtwasi.wasi.errnos import AbiViolation, WasiError
from virtwasi.wasi.memory import GuestMemory

CALLER = """
(module
  (import "host" "f" (func $f (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "call") (param i32 i64) (result i32) (call $f (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
"""


KEEP: list[HostFunc] = []  # the callbacks must outlive the instances that call them


def instantiate(fn: object, box: TrapBox) -> tuple[wasmtime.Store, wasmtime.Instance]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    KEEP.append(define(linker, "host", "f", ("i32", "i64"), ("i32",), fn, box))  # type: ignore[arg-type]
    return store, linker.instantiate(store, wasmtime.Module(engine, CALLER))


def export(store: wasmtime.Store, inst: wasmtime.Instance, name: str) -> wasmtime.Func:
    func = inst.exports(store)[name]
    assert isinstance(func, wasmtime.Func)
    return func


def test_arguments_and_result_cross_as_raw_values() -> None:
    seen: list[tuple[int, int]] = []

    def f(a: int, b: int) -> int:
        seen.append((a, b))
        return a - 1

    store, inst = instantiate(f, TrapBox())
    assert export(store, inst, "call")(store, -5, -(2**40)) == -6
    assert export(store, inst, "call")(store, 2**31 - 1, 2**63 - 1) == 2**31 - 2
    assert seen == [(-5, -(2**40)), (2**31 - 1, 2**63 - 1)]


def test_an_exception_becomes_a_trap_and_is_kept_for_the_embedder() -> None:
    def f(a: int, b: int) -> int:
        raise KeyError("internal failure")

    box = TrapBox()
    store, inst = instantiate(f, box)
    with pytest.raises(wasmtime.WasmtimeError, match="internal failure"):
        export(store, inst, "call")(store, 1, 2)
    assert isinstance(box.error, KeyError)
    # The guest and the host both carry on.
    box.error = None
    with pytest.raises(wasmtime.WasmtimeError):
        export(store, inst, "call")(store, 1, 2)


def guest_memory() -> tuple[GuestMemory, wasmtime.Store, wasmtime.Instance]:
    store, inst = instantiate(lambda a, b: 0, TrapBox())
    memory = inst.exports(store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    return GuestMemory(memory_view(store, memory)), store, inst


def test_guest_memory_reads_and_writes_in_bounds() -> None:
    mem, _, _ = guest_memory()
    mem.pack(FILESTAT, 64, 1, 2, 4, 3, 5, 6, 7, 8)
    assert mem.unpack(FILESTAT, 64) == (1, 2, 4, 3, 5, 6, 7, 8)
    assert bytes(mem.window(64 + 16, 1)) == b"\x04"  # filetype sits at offset 16
    mem.window(100, 5)[:] = b"hello"
    assert mem.string(100, 5) == "hello"


@pytest.mark.parametrize(("ptr", "length"), [(65536, 1), (65530, 7), (2**32 - 1, 2), (0, 2**32)])
def test_out_of_bounds_is_an_abi_violation_never_a_host_error(ptr: int, length: int) -> None:
    mem, _, _ = guest_memory()
    with pytest.raises(AbiViolation, match="out of bounds"):
        mem.window(ptr, length)


def test_misaligned_structs_are_abi_violations() -> None:
    mem, _, _ = guest_memory()
    with pytest.raises(AbiViolation, match="not aligned"):
        mem.pack(FILESTAT, 12, 1, 2, 4, 3, 5, 6, 7, 8)


def test_a_huge_iovec_count_is_enomem_before_anything_is_read() -> None:
    mem, _, _ = guest_memory()
    with pytest.raises(WasiError) as caught:
        mem.first_iovec(0, 2**32 - 1)
    assert caught.value.errno is Errno.NOMEM


def test_the_first_non_empty_iovec_is_found_and_its_bounds_left_to_its_use() -> None:
    mem, _, _ = guest_memory()
    mem.pack(struct.Struct("<IIIIII"), 0, 100, 0, 200, 3, 65535, 9)
    assert mem.first_iovec(0, 3) == (200, 3)  # skips the empty one, never reads the third
    assert mem.first_iovec(16, 1) == (65535, 9)  # out of bounds: the caller's check, later
    assert mem.first_iovec(0, 1) == (0, 0)
    with pytest.raises(AbiViolation):
        mem.first_iovec(65532, 2)  # the array itself runs out of memory


def test_memory_growth_is_seen_on_the_next_access() -> None:
    mem, store, inst = guest_memory()
    with pytest.raises(AbiViolation):
        mem.window(70000, 4)
    assert export(store, inst, "grow")(store, 1) == 1
    mem.window(70000, 4)[:] = b"grew"
    assert mem.string(70000, 4) == "grew"


def test_a_string_that_is_not_utf8_is_eilseq() -> None:
    mem, _, _ = guest_memory()
    mem.window(10, 2)[:] = b"\xff\xfe"
    with pytest.raises(WasiError) as caught:
        mem.string(10, 2)
    assert caught.value.errno is Errno.ILSEQ
