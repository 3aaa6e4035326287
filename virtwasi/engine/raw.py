"""Raw host functions: Python callables a wasm module imports, at about 0.3 us a call.

wasmtime-py's ``Linker.define_func`` converts every argument through ``Val`` (about 12 us a
call). Here each import is a ctypes callback given to wasmtime's *unchecked* API: arguments
arrive as 16-byte raw slots decoded in place with one precompiled ``struct``. A callback must
never let an exception escape (ctypes would swallow it and the guest would carry on as if the
call had succeeded), so every failure becomes a wasm trap carrying a message, and the
exception itself is kept for the embedder in :class:`TrapBox`.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

RAW_SLOT = 16  # sizeof(wasmtime_val_raw_t)
# Parameter kinds: the wasm type, and whether the host reads it signed or unsigned.
_CODES = {"i32": ("i", 4), "u32": ("I", 4), "i64": ("q", 8), "u64": ("Q", 8),
          "f32": ("f", 4), "f64": ("d", 8)}

_VOID_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
)


class TrapBox:
    """Where a callback leaves the exception that ended the guest (an exit, or a failure),
    so the embedder can tell ``proc_exit(3)`` from a crash after the trap unwinds."""

    __slots__ = ("error", "on_caller")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        # Given the raw caller before each call while set: a start function runs before the
        # instance exists, so its memory can only be found through the caller.
        self.on_caller: Callable[[int], None] | None = None


# The process's address space as one flat view: wasmtime hands each callback the address of
# its args buffer, which is then decoded and answered in place with precompiled structs, at
# no cost of a ctypes object per call. Only addresses wasmtime passed are ever touched.
_ADDRESS_SPACE = memoryview((ctypes.c_char * sys.maxsize).from_address(0)).cast("B")


def _trap(box: TrapBox, exc: BaseException) -> int:
    """Keep ``exc`` for the embedder and return the wasm trap that ends the guest."""
    box.error = exc
    message = f"{type(exc).__name__}: {exc}".encode()
    trap = ffi.wasmtime_trap_new(ctypes.c_char_p(message), len(message))
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


def _args_layout(params: tuple[str, ...]) -> struct.Struct:
    fmt = "<"
    for kind in params:
        code, size = _CODES[kind]
        fmt += code + "x" * (RAW_SLOT - size)
    return struct.Struct(fmt)


_VAL_KINDS = {
    "i32": wasmtime.ValType.i32,
    "u32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "u64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


def _callback(
    params: tuple[str, ...],
    results: tuple[str, ...],
    fn: Callable[..., int | float | None],
    box: TrapBox,
    answered: tuple[type[BaseException], ...],
    answer: Callable[[BaseException], int],
) -> tuple[Any, wasmtime.FuncType]:
    """The C callback calling ``fn`` (see :func:`define`), and its function type."""
    unpack = _args_layout(params).unpack_from
    result_code = _CODES[results[0]][0] if results else None
    pack = struct.Struct("<" + result_code).pack_into if result_code else None
    memory = _ADDRESS_SPACE

    def callback(env: Any, caller: Any, args: int, nargs: int) -> int:
        try:
            if box.on_caller is not None:
                box.on_caller(caller)
            try:
                result = fn(*unpack(memory, args))
            except answered as exc:
                result = answer(exc)
            if pack is not None:
                pack(memory, args, result or 0)
            return 0
        except BaseException as exc:  # nothing may escape a raw callback
            return _trap(box, exc)

    _CALLBACK_CODES.add(callback.__code__)
    # Declared with plain void pointers so the args buffer arrives as an int address.
    functype = wasmtime.FuncType(
        [_VAL_KINDS[p]() for p in params], [_VAL_KINDS[r]() for r in results]
    )
    return _VOID_CALLBACK(callback), functype


def define(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    params: tuple[str, ...],
    results: tuple[str, ...],
    fn: Callable[..., int | None],
    box: TrapBox,
    answered: tuple[type[BaseException], ...] = (),
    answer: Callable[[BaseException], int] = lambda exc: 0,
) -> HostFunc:
    """Define ``module.name`` in ``linker`` as a raw host function calling ``fn(*args)``.

    ``fn`` returns the single result (None counts as 0). An exception of one of the
    ``answered`` types becomes the result ``answer(exc)`` (an errno, say); any other is
    stored in ``box`` and turned into a trap.
    """
    c_callback, functype = _callback(params, results, fn, box, answered, answer)
    module_b, name_b = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), module_b, len(module_b), name_b, len(name_b), functype.ptr(),
        ctypes.cast(c_callback, ffi.wasmtime_func_unchecked_callback_t), None,
        _NO_FINALIZER,
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    # The linker keeps a raw pointer to the callback: keep the Python object alive with it.
    return HostFunc(c_callback, functype)


def new_func(
    store: wasmtime.Store,
    params: tuple[str, ...],
    results: tuple[str, ...],
    fn: Callable[..., int | float | None],
    box: TrapBox,
) -> tuple[wasmtime.Func, HostFunc]:
    """A raw host function in ``store`` calling ``fn(*args)``, as :func:`define` makes one,
    given as a value (to instantiate a core module with a list of imports). Keep the
    :class:`HostFunc` alive as long as the store can call the function."""
    c_callback, functype = _callback(params, results, fn, box, (), lambda exc: 0)
    raw = ffi.wasmtime_func_t()
    ffi.wasmtime_func_new_unchecked(
        store._context(), functype.ptr(),
        ctypes.cast(c_callback, ffi.wasmtime_func_unchecked_callback_t), None,
        _NO_FINALIZER, ctypes.byref(raw),
    )
    return wasmtime.Func._from_raw(raw), HostFunc(c_callback, functype)


def guest_caller(
    store: wasmtime.Store, func: wasmtime.Func, params: tuple[str, ...], results: tuple[str, ...]
) -> Callable[..., Any]:
    """``func``, a core function of ``store``, as a Python function called through wasmtime's
    unchecked API, at about a host call's cost where ``Func.__call__`` converts every value
    through ``Val`` (tens of us: most of a 64 KiB read's time, when it was a ``realloc``).

    It takes the core arguments as ``params`` kinds say (``"u32"``: an unsigned int) and
    gives the one result (or None, or a list of several) as ``results`` kinds say; a trap is
    raised as ``wasmtime.Trap``, as ``Func.__call__`` raises it. Safe to re-enter (a guest
    function may call the host, which may call it again): each call in flight has its own
    buffer."""
    slots = max(len(params), len(results), 1)
    pack = _args_layout(params).pack_into
    unpack = _args_layout(results).unpack_from
    single = len(results) == 1
    context = store._context()
    func_ref = ctypes.byref(func._func)
    call = ffi.wasmtime_func_call_unchecked
    memory = _ADDRESS_SPACE
    free: list[tuple[Any, int, Any, Any]] = []

    def frame() -> tuple[Any, int, Any, Any]:
        buffer = (ffi.wasmtime_val_raw_t * slots)()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        return buffer, ctypes.addressof(buffer), trap, ctypes.byref(trap)

    def caller(*args: Any) -> Any:
        mine = free.pop() if free else frame()
        buffer, address, trap, trap_ref = mine
        pack(memory, address, *args)
        error = call(context, func_ref, buffer, slots, trap_ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:  # the Trap owns the pointer now: this frame is not reused
            raise wasmtime.Trap._from_ptr(trap)
        out = unpack(memory, address)
        free.append(mine)
        if single:
            return out[0]
        return list(out) if out else None

    return caller


_CALLBACK_CODES: set[Any] = set()


def in_host_call(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a raw host function (a guest's call into the host)."""
    while frame is not None:
        if frame.f_code in _CALLBACK_CODES:
            return True
        frame = frame.f_back
    return False


class HostFunc:
    """The ctypes callback behind a defined import. wasmtime holds only a raw pointer to
    it: keep this object alive as long as any instance made from the linker can run."""

    __slots__ = ("callback", "functype")

    def __init__(self, callback: Any, functype: wasmtime.FuncType) -> None:
        self.callback = callback
        self.functype = functype
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a null function pointer


def caller_memory(caller: int) -> wasmtime.Memory | None:
    """The memory the calling instance exports as ``memory``, found through the raw caller
    of a host call (valid only during that call; the Memory it gives stays valid)."""
    pointer = ctypes.cast(caller, ctypes.POINTER(ffi.wasmtime_caller_t))
    found = wasmtime.Caller(pointer).get("memory")
    return found if isinstance(found, wasmtime.Memory) else None


def memory_view(store: wasmtime.Store, memory: wasmtime.Memory) -> Callable[[], memoryview]:
    """A function returning a fresh, writable view over ``memory`` as it is now: its base
    and length, both of which may change when the guest grows it."""

    def refresh() -> memoryview:
        base = ctypes.addressof(memory.data_ptr(store).contents)
        size = memory.data_len(store)
        return memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")

    return refresh
