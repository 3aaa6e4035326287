"""One wasm module running as a client of a WASI implementation.

A :class:`Client` is a client instance in a world (its own handle table, its preview 1
adapter keeping the fd table) plus the wasm instance whose imports are raw host functions
bound to that adapter. Closing it tears the client instance down: every descriptor it still
held is dropped, and the implementation's destructor flushes and closes the file behind it.

Reactor modules (exports but no ``_start``) are first-class: :meth:`Client.call` runs
``_initialize`` once before the first export it calls. Imports from modules other than
``wasi_snapshot_preview1`` are served by Python callables (``imports=``).
"""

from __future__ import annotations

import functools
import io
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import wasmtime

from .engine import (
    HostFunc,
    TrapBox,
    caller_memory,
    compile_module,
    define,
    interrupt,
    memory_view,
)
from .wasi import common, transparent
from .wasi.abi import IMPORTS
from .wasi.common import ProcExit
from .wasi.errnos import ANSWERED, AbiViolation, errno_of
from .wasi.memory import GuestMemory
from .wasi.preview1 import Preview1
from .wasi.trace import Tracer, TraceTarget
from .wasi.transparent import TransparentPreview1
from .world import Context, Func, ResourceType, Semantics

if TYPE_CHECKING:
    from .runtime import WasiWorld

WASI_MODULE = "wasi_snapshot_preview1"
TRAP_EXIT_CODE = 134  # what the wasmtime CLI exits with when the guest traps
ENGINE_FLAVOR = "exceptions"  # names the engine configuration in the compiled-module cache
TIMEOUT_EXIT_CODE = 124  # as GNU timeout
OUT_OF_FUEL_EXIT_CODE = 152  # 128 + SIGXCPU, as a CPU-time limit (ulimit -t) ends a process
OUT_OF_MEMORY_EXIT_CODE = 137  # 128 + SIGKILL, as the kernel's out-of-memory killer ends one
# A guest that ends abnormally this close to --max-memory is taken to have hit it.
MEMORY_LIMIT_MARGIN = 1 << 20

# The waits a signal breaks at once: reading stdin, sleeping in a poll (either preview).
interrupt.blocking(common.read_stream)
interrupt.blocking(common.sleep_until)


def engine_flavor(epochs: bool, fuel: bool) -> str:
    """The compiled-module cache's name for an engine configuration: code compiled with
    epoch checks or fuel metering differs from code compiled without."""
    return ENGINE_FLAVOR + ("-epochs" if epochs else "") + ("-fuel" if fuel else "")


def make_engine(epochs: bool, fuel: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_exceptions = True  # some real toolchains emit exception-handling code
    config.epoch_interruption = epochs
    config.consume_fuel = fuel
    return wasmtime.Engine(config)


@dataclass(frozen=True)
class Limits:
    """What bounds each client of a world.

    ``timeout``: seconds of wall clock per call into the guest (``start`` or ``call``).
    ``fuel``: wasmtime fuel for the client's whole life (about one unit per wasm
    instruction). ``max_memory``: bytes the guest's linear memory may grow to (a growth
    past it fails, as ``malloc`` returning NULL). ``signals``: the signals that end a
    running guest with :class:`GuestInterrupted` (none by default; only while the call runs
    in the main thread, and only those whose handler is still Python's default). Signals
    and a timeout need epoch checks compiled into the guest; fuel, fuel metering."""

    timeout: float | None = None
    fuel: int | None = None
    max_memory: int | None = None
    signals: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {self.timeout}")
        if self.fuel is not None and self.fuel < 0:
            raise ValueError(f"fuel must be at least 0, got {self.fuel}")
        if self.max_memory is not None and self.max_memory < 0:
            raise ValueError(f"max_memory must be at least 0 bytes, got {self.max_memory}")

    @property
    def epochs(self) -> bool:
        """Whether the engine needs epoch interruption."""
        return bool(self.signals) or self.timeout is not None


ImportFunc = Callable[..., Any]
"""A Python callable serving one extra import: wasm values in, a value (or None) out."""

ModuleSource = str | Path | bytes | bytearray

Environment = Mapping[str, str] | Iterable[tuple[str, str]]
"""The guest's environment: a mapping, or (key, value) pairs in order."""

OutputTarget = BinaryIO | str | os.PathLike[str]
"""Where stdout or stderr goes: a binary stream, or a path opened for writing (and closed
with the client)."""

InputSource = BinaryIO | bytes | bytearray | memoryview | str | os.PathLike[str]
"""What stdin reads: bytes, a binary stream, or a path (a ``str`` is always a path, never
the input itself) opened for reading and closed with the client."""


def takes_client(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Marks an extra import that wants its :class:`Client` first (to reach guest memory
    with ``read_memory``/``write_memory``), before the wasm arguments."""
    fn.takes_client = True  # type: ignore[attr-defined]
    return fn


class GuestExit(Exception):
    """A call into the guest ended with ``proc_exit``; ``code`` is the code it exited with.

    :meth:`Client.start` turns it into its return value. :meth:`Client.call` raises it,
    keeps the code in :attr:`Client.exit_code`, and raises it again, at once and without
    entering the guest, for every later call: a module that exited is done."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the guest exited with code {code}")
        self.code = code


class GuestTrap(Exception):
    """A call into the guest trapped (``unreachable``, an access out of bounds, a WASI call
    with a pointer outside its memory...); the message is wasmtime's. :meth:`Client.start`
    turns it into exit code 134 (:data:`TRAP_EXIT_CODE`) with the message on stderr, as the
    wasmtime CLI does; :meth:`Client.call` raises it."""


def _arguments(args: Sequence[str]) -> list[str]:
    """``args`` as the guest's argument list (after argv[0]): a sequence of str."""
    if isinstance(args, str | bytes | bytearray):
        raise TypeError(f"args must be a sequence of str, not a single {type(args).__name__} "
                        f"(it would pass each character as an argument): write [{args!r}]")
    try:
        listed = list(args)
    except TypeError:
        raise TypeError(f"args must be a sequence of str, not {type(args).__name__}") from None
    for arg in listed:
        if not isinstance(arg, str):
            raise TypeError(f"each argument must be a str, got {type(arg).__name__}: {arg!r}")
    return listed


def _environment(env: Environment | None) -> list[str]:
    """``env`` as the guest's ``KEY=VALUE`` strings."""
    if env is None:
        return []
    if isinstance(env, str | bytes | bytearray) or not isinstance(env, Mapping | Iterable):
        raise TypeError("env must be a mapping of str to str or an iterable of (key, value) "
                        f"pairs, not {type(env).__name__}")
    pairs = env.items() if isinstance(env, Mapping) else env
    environ = []
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(f"env: each item must be a (key, value) pair, got {pair!r}")
        key, val = pair
        if not (isinstance(key, str) and isinstance(val, str)):
            raise TypeError(f"env: keys and values must be str, got {key!r}: {val!r}")
        if not key or "=" in key:
            raise ValueError(f"env: {key!r} is not a variable name (empty, or holds '=')")
        environ.append(f"{key}={val}")
    return environ


def _is_text(stream: object) -> bool:
    """Whether ``stream`` takes or gives str: a TextIOBase, or a wrapper with an encoding
    over a binary ``buffer`` of its own (pytest's stdin is its own buffer)."""
    return isinstance(stream, io.TextIOBase) or (
        hasattr(stream, "encoding") and getattr(stream, "buffer", stream) is not stream)


class _ReadOnly(io.RawIOBase):
    """A binary stream that has ``read`` only, given the ``readinto`` stdin is read with."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer)) or b""
        buffer[:len(data)] = data
        return len(data)


def _output(target: OutputTarget | None, which: str, opened: list[IO[bytes]]
            ) -> BinaryIO | None:
    """The binary stream ``which`` writes to (None: captured); a path is opened here and
    added to ``opened``, for the client to close."""
    if target is None:
        return None
    if isinstance(target, str | os.PathLike):
        stream = open(target, "wb")  # noqa: SIM115 - closed with the client
        opened.append(stream)
        return stream
    if _is_text(target):
        raise TypeError(f"{which} must be a binary stream or a path, not a text stream: the "
                        f"guest writes bytes (pass sys.{which}.buffer, or io.BytesIO())")
    if not callable(getattr(target, "write", None)):
        raise TypeError(f"{which} must be a binary stream (with write) or a path, "
                        f"not {type(target).__name__}")
    return target


def _input(source: InputSource | None, opened: list[IO[bytes]]) -> BinaryIO | None:
    """The binary stream stdin reads (None: an empty one); as :func:`_output` for a path."""
    if source is None:
        return None
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    if isinstance(source, str | os.PathLike):
        stream = open(source, "rb")  # noqa: SIM115 - closed with the client
        opened.append(stream)
        return stream
    if _is_text(source):
        raise TypeError("stdin must be bytes, a binary stream or a path, not a text stream: "
                        "the guest reads bytes (pass sys.stdin.buffer, or the text encoded)")
    if callable(getattr(source, "readinto", None)) or callable(getattr(source, "readinto1",
                                                                          None)):
        return source
    if callable(getattr(source, "read", None)):
        return _ReadOnly(source)  # type: ignore[return-value]
    raise TypeError("stdin must be bytes, a binary stream (with read) or a path, "
                    f"not {type(source).__name__}")


def _unsigned(ptr: int) -> int:
    """A 32-bit pointer as wasmtime returns an i32 (signed) read as the address it is."""
    return ptr & 0xFFFFFFFF if -(1 << 31) <= ptr < 0 else ptr


def _signed(ptr: int) -> int:
    """An address as an i32 argument takes it."""
    return ptr - (1 << 32) if (1 << 31) <= ptr < (1 << 32) else ptr


def _c_string(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if "\0" in text:
        raise ValueError(f"{text!r} holds a NUL character: C would see it end there")
    return text.encode("utf-8") + b"\0"


class GuestStopped(Exception):
    """A call into the guest was ended by the host: a signal or a limit. ``exit_code`` is
    what ``virtwasi run`` exits with."""

    exit_code = 1


class GuestInterrupted(GuestStopped):
    """A signal (``signum``: SIGINT, SIGTERM) ended the guest."""

    def __init__(self, signum: int) -> None:
        names: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
        name = names.get(signum, f"stopped by {signal.Signals(signum).name}")
        super().__init__(name)
        self.signum = signum
        self.exit_code = 128 + signum


class GuestTimeout(GuestStopped):
    """The call ran longer than the world's ``timeout``."""

    exit_code = TIMEOUT_EXIT_CODE

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


class GuestOutOfFuel(GuestStopped):
    """The guest used up its ``fuel``."""

    exit_code = OUT_OF_FUEL_EXIT_CODE

    def __init__(self, fuel: int) -> None:
        super().__init__(f"out of fuel (the limit was {fuel})")
        self.fuel = fuel


class GuestOutOfMemory(GuestStopped):
    """The guest needed more linear memory than ``max_memory`` allows: its module asks for
    more at start, or it ended abnormally (a trap, a non-zero exit) within
    :data:`MEMORY_LIMIT_MARGIN` of the limit. wasmtime's store limits make a growth past
    the limit fail without telling the host, so that closeness is the evidence."""

    exit_code = OUT_OF_MEMORY_EXIT_CODE

    def __init__(self, limit: int) -> None:
        super().__init__(f"memory limit reached ({limit} bytes)")
        self.limit = limit


def _fit(value: int | float, kind: wasmtime.ValType) -> int | float:
    """``value`` as the wasm type ``kind`` takes it (integers must be whole)."""
    if kind in (wasmtime.ValType.f32(), wasmtime.ValType.f64()):
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value} is not an integer")
    return int(value)


def load_module(engine: wasmtime.Engine, module: ModuleSource,
                imports: Mapping[str, Mapping[str, ImportFunc]],
                on_compile: Callable[[int], None] | None = None,
                flavor: str = ENGINE_FLAVOR) -> wasmtime.Module:
    """``module`` compiled (or taken from the cache), with every import checked to be served:
    a clear error before anything is built, not a half-made world. ``flavor`` names
    ``engine``'s configuration (see :func:`engine_flavor`)."""
    compiled = compile_module(engine, module, flavor, on_compile)
    for imp in compiled.imports:
        served = (imp.module == WASI_MODULE and imp.name in IMPORTS) or (
            imp.name in imports.get(imp.module, {}))
        if not served:
            raise ValueError(
                f"the module imports {imp.module}.{imp.name}, which nothing provides"
                + ("" if imp.module == WASI_MODULE else " (pass it in imports=)"))
        if imp.module != WASI_MODULE and not isinstance(imp.type, wasmtime.FuncType):
            raise ValueError(f"the import {imp.module}.{imp.name} is not a function")
    return compiled


# preview 1 functions that pass no pointer: a module without memory can still call them.
NO_MEMORY_NEEDED = frozenset({
    "fd_advise", "fd_allocate", "fd_close", "fd_datasync", "fd_fdstat_set_flags",
    "fd_fdstat_set_rights", "fd_filestat_set_size", "fd_filestat_set_times", "fd_renumber",
    "fd_sync", "proc_exit", "proc_raise", "sched_yield", "sock_shutdown",
})


def memory_problem(module: wasmtime.Module) -> str | None:
    """Why ``module`` cannot make its WASI calls (it exports no memory for them), or None."""
    if any(e.name == "memory" and isinstance(e.type, wasmtime.MemoryType)
           for e in module.exports):
        return None
    needy = sorted({imp.name or "" for imp in module.imports
                    if imp.module == "wasi_snapshot_preview1"} - NO_MEMORY_NEEDED)
    if not needy:
        return None
    return (f"exports no memory named \"memory\", which WASI calls ({', '.join(needy[:3])}"
            f"{', ...' if len(needy) > 3 else ''}) read and write: export it (wasm-ld and "
            "wasi-sdk do by default)")


class Client:
    """``module`` instantiated as a client of ``host``'s WASI implementation.

    ``args`` are the guest's arguments after argv[0], a sequence of str; argv[0] is
    ``name``, which defaults to the module file's name (``hello.wasm``), or ``module`` for a
    module given as bytes. ``env`` is a mapping or (key, value) pairs. stdout/stderr stream
    to the given binary files as the guest writes, or to a path (opened for writing, closed
    with the client); a stream not given is captured (see :attr:`stdout` and
    :attr:`stderr`). A text stream is refused: pass ``sys.stdout.buffer``. ``stdin`` may be
    bytes, a binary file or a path. ``trace`` writes a line for every preview 1 call the
    guest makes: to a text stream, a path, or through a
    :class:`~virtwasi.wasi.trace.Tracer` (JSON lines, or one trace for several clients);
    see :mod:`virtwasi.wasi.trace`. Untraced, nothing of it runs.

    Each of these is checked here, before anything runs: a wrong kind is a TypeError.

    :attr:`exit_code` is None until the guest calls ``proc_exit``, then the code it gave
    (see :meth:`call`).
    """

    def __init__(
        self,
        host: WasiWorld,
        module: ModuleSource | wasmtime.Module,
        args: Sequence[str] = (),
        *,
        env: Environment | None = None,
        stdin: InputSource | None = None,
        stdout: OutputTarget | None = None,
        stderr: OutputTarget | None = None,
        name: str | None = None,
        imports: Mapping[str, Mapping[str, ImportFunc]] | None = None,
        on_compile: Callable[[int], None] | None = None,
        trace: TraceTarget | None = None,
    ) -> None:
        self.host = host
        self.exit_code: int | None = None
        self._ended: GuestExit | GuestTrap | None = None  # by the start function
        self.exports: Mapping[str, Any]
        self.stopped = False  # a trap, a signal or a limit ended a call: see close()
        guest_args = _arguments(args)
        environ = _environment(env)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"program_name must be a str, not {type(name).__name__}")
        self._extra_imports = {m: dict(funcs) for m, funcs in (imports or {}).items()}
        self._load(module, on_compile)
        self.limits: Limits = host.limits
        if name is None:
            name = Path(module).name if isinstance(module, str | Path) else "module"
        self.name = name
        self._initialized = False
        self._opened: list[IO[bytes]] = []  # the files opened here from paths
        try:
            out = _output(stdout, "stdout", self._opened)
            err = _output(stderr, "stderr", self._opened)
            inp = _input(stdin, self._opened)
        except BaseException:
            self._close_opened()
            raise
        self._captured = (io.BytesIO() if out is None else None,
                          io.BytesIO() if err is None else None)
        self.out: BinaryIO = out or self._captured[0]  # type: ignore[assignment]
        self.err: BinaryIO = err or self._captured[1]  # type: ignore[assignment]
        self._tracer = None if trace is None else Tracer.of(trace)
        if self._tracer is not None:
            self._tracer.attach()

        contexts: list[Context] = []

        def client(ctx: Context) -> dict[str, Func | ResourceType]:
            contexts.append(ctx)
            return {}

        try:
            self.instance = host.world.instantiate(name, client, {"wasi": host.wasi})
        except BaseException:
            self._close_opened()
            raise
        try:
            self._join(contexts[0], [name, *guest_args], environ, inp)
        except BaseException:
            self.close()
            raise

    def _load(self, module: ModuleSource | wasmtime.Module,
              on_compile: Callable[[int], None] | None) -> None:
        """Compile ``module`` (or take it from the cache) before anything is built."""
        self.module = module if isinstance(module, wasmtime.Module) else load_module(
            self.host.engine, module, self._extra_imports, on_compile, self.host.flavor)

    def _join(self, ctx: Context, argv: list[str], environ: list[str],
              stdin: BinaryIO | None) -> None:
        """Make the guest, its imports served with the client instance's context."""
        # Transparent semantics ("take one"): fds are the implementation's own indices.
        adapter = (TransparentPreview1 if self.host.semantics is Semantics.TRANSPARENT
                   else Preview1)
        self.adapter: Preview1 = adapter(ctx.imports["wasi"], ctx, argv, environ, stdin,
                                         self.out, self.err)
        self._instantiate()

    def _instantiate(self) -> None:
        engine = self.host.engine
        self.store = wasmtime.Store(engine)
        if self.limits.max_memory is not None:
            self.store.set_limits(memory_size=self.limits.max_memory)
        if self.limits.fuel is not None:
            self.store.set_fuel(self.limits.fuel)
        if self.limits.epochs:
            self.store.set_epoch_deadline(1)  # (a start function runs at instantiation)
        linker = wasmtime.Linker(engine)
        self._box = TrapBox()
        # wasmtime keeps raw pointers to these callbacks: they live as long as the client.
        self._host_funcs: list[HostFunc] = []
        answered: tuple[type[BaseException], ...] = ANSWERED
        answer: Callable[[BaseException], int] = errno_of
        if isinstance(self.adapter, TransparentPreview1):  # also EBADF for a number not held
            answered, answer = transparent.ANSWERED, transparent.answer
        tracer = self._tracer
        for fname, fn in self.adapter.functions().items():
            results: tuple[str, ...] = () if fname == "proc_exit" else ("i32",)
            if tracer is not None:  # untraced, the engine calls the adapter's method itself
                fn = tracer.wrap(fname, fn, self.adapter, answered, answer)
            self._host_funcs.append(define(
                linker, WASI_MODULE, fname, IMPORTS[fname], results, fn, self._box,
                answered=answered, answer=answer,
            ))
        for module_name, funcs in self._extra_imports.items():
            for imp in self.module.imports:
                serve = funcs.get(imp.name or "") if imp.module == module_name else None
                if serve is not None and isinstance(imp.type, wasmtime.FuncType):
                    if getattr(serve, "takes_client", False):
                        serve = functools.partial(serve, self)
                    # Extra imports are rare calls: wasmtime's checked path is fast enough.
                    linker.define_func(module_name, imp.name or "", imp.type, serve)
        # A start function runs inside instantiate, before the instance (and so its
        # exported memory) exists: its WASI calls find the memory through their caller.
        self._box.on_caller = self._memory_from_caller
        try:
            self.wasm = linker.instantiate(self.store, self.module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            stop = self._stopped(exc, None)
            if stop is not None:
                raise stop from None
            error = self._box.error
            if error is None and not isinstance(exc, wasmtime.Trap):
                raise  # not run at all (an import missing, say)
            # The start function ended the guest: as in wasmtime, that is the run's outcome
            # (an exit code, or a trap), given by start() or any call.
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise error from None
            self._ended = (GuestExit(error.code) if isinstance(error, ProcExit)
                           else GuestTrap(str(exc)))
            if isinstance(error, ProcExit):
                self.exit_code = error.code
            self.exports = {}
            return
        finally:
            self._box.on_caller = None
        self.exports = self.wasm.exports(self.store)
        memory = self.exports.get("memory")
        self.adapter.memory = GuestMemory(memory_view(self.store, memory) if isinstance(
            memory, wasmtime.Memory) else None)

    def _memory_from_caller(self, caller: int) -> None:
        self._box.on_caller = None  # the first call finds it; later ones keep it
        memory = caller_memory(caller)
        self.adapter.memory = GuestMemory(None if memory is None else memory_view(
            self.store, memory))

    def initialize(self) -> None:
        """Run a reactor's ``_initialize`` (once; a module without one needs nothing)."""
        if self._initialized:
            return
        self._initialized = True
        if isinstance(self.exports.get("_initialize"), wasmtime.Func):
            self._invoke("_initialize")

    def call(self, export: str, *args: Any) -> Any:
        """Call an exported function, after ``_initialize`` if the module has one.

        Raises GuestExit on proc_exit, GuestTrap on a trap, GuestStopped when a signal or a
        limit ended it, ValueError for a name that is not an exported function or arguments
        that do not fit it. Once the guest has exited, :attr:`exit_code` holds its code and
        every later call of an export raises GuestExit again at once, without entering the
        guest."""
        if self._ended is not None:
            raise self._ended  # the start function exited or trapped: nothing else runs
        if self.exit_code is not None:
            self._require_export(export)
            raise GuestExit(self.exit_code)
        try:
            if export not in ("_start", "_initialize"):
                self.initialize()
            return self._invoke(export, *args)
        except GuestExit as exit_:
            self.exit_code = exit_.code
            raise
        except (GuestTrap, GuestStopped, KeyboardInterrupt):
            self.stopped = True
            raise

    def _require_export(self, export: str) -> None:
        """The ValueError naming the exports, if ``export`` is not one of its functions."""
        if not isinstance(self.exports.get(export), wasmtime.Func):
            self._invoke(export)

    def _invoke(self, export: str, *args: int | float) -> Any:
        func = self.exports.get(export)
        if not isinstance(func, wasmtime.Func):
            names = sorted(n for n, v in self.exports.items() if isinstance(v, wasmtime.Func))
            raise ValueError(f"the module exports no function named {export!r}"
                             f" (it exports: {', '.join(names) or 'none'})")
        params = func.type(self.store).params
        if len(args) != len(params):
            raise ValueError(f"{export} takes {len(params)} argument(s), got {len(args)}")
        values = [_fit(arg, kind) for arg, kind in zip(args, params, strict=True)]
        return self._run_guest(lambda: func(self.store, *values))

    def _run_guest(self, enter: Callable[[], Any]) -> Any:
        """``enter()``, a call into the guest, under the limits; its result, or the
        exception that says how the guest ended (see :meth:`call`)."""
        self._box.error = None
        limits = self.limits
        with interrupt.guarded(self.host.engine, self.store, epochs=limits.epochs,
                               signals=limits.signals, timeout=limits.timeout) as guard:
            try:
                result = enter()
            except (wasmtime.WasmtimeError, wasmtime.Trap) as trap:
                stop = self._stopped(trap, guard)
                if stop is not None:
                    raise stop from None
                if isinstance(self._box.error, ProcExit):
                    if self._box.error.code and self._near_memory_limit():
                        raise GuestOutOfMemory(limits.max_memory or 0) from None
                    raise GuestExit(self._box.error.code) from None
                if self._near_memory_limit():
                    raise GuestOutOfMemory(limits.max_memory or 0) from None
                if isinstance(self._box.error, KeyboardInterrupt | SystemExit):
                    raise self._box.error from None  # Ctrl-C with no signals= handling
                raise GuestTrap(str(trap)) from None
        stop = self._stopped(None, guard)  # a signal that came as the guest returned
        if stop is not None:
            raise stop
        return result

    def _stopped(self, trap: BaseException | None,
                 guard: interrupt.Guard | None) -> GuestStopped | None:
        """The host's reason for ending the guest, if it was the host that ended it."""
        reason = None if guard is None else interrupt.stopped_by(guard, self._box.error)
        if reason is not None:
            if reason.kind == "timeout":
                return GuestTimeout(self.limits.timeout or 0)
            return GuestInterrupted(reason.signum)
        if isinstance(trap, wasmtime.Trap) and trap.trap_code is wasmtime.TrapCode.OUT_OF_FUEL:
            return GuestOutOfFuel(self.limits.fuel or 0)
        if (trap is not None and self.limits.max_memory is not None
                and "memory" in str(trap) and "limit" in str(trap)):
            return GuestOutOfMemory(self.limits.max_memory)  # its minimum does not fit
        return None

    def _near_memory_limit(self) -> bool:
        limit = self.limits.max_memory
        memory = self.exports.get("memory") if hasattr(self, "exports") else None
        if limit is None or not isinstance(memory, wasmtime.Memory):
            return False
        return memory.data_len(self.store) + MEMORY_LIMIT_MARGIN > limit

    def start(self) -> int:
        """Run ``_start`` as a WASI command does; returns the exit code (134 on a trap).

        Raises :class:`GuestStopped` (:class:`GuestInterrupted`, :class:`GuestTimeout`,
        :class:`GuestOutOfFuel`, :class:`GuestOutOfMemory`) when the host ended it."""
        if not isinstance(self.exports.get("_start"), wasmtime.Func) and self._ended is None:
            raise ValueError("the module exports no _start function: it is not a WASI command")
        try:
            self.call("_start")
            return 0
        except GuestExit as exit_:
            return exit_.code
        except GuestTrap as trap:
            self.err.write(f"Error: {trap}\n".encode())
            self.err.flush()
            return TRAP_EXIT_CODE

    def read_memory(self, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes of the guest's exported memory at ``ptr``."""
        return bytes(self._window(ptr, length))

    read_bytes = read_memory
    """The same method as :meth:`read_memory`, named as the pair of :meth:`write_bytes`."""

    # Passing strings and buffers to a C library compiled to wasm, through its own allocator.

    def alloc(self, size: int, align: int = 8) -> int:
        """``size`` bytes allocated by the guest's own allocator: its ``malloc`` export, or
        ``cabi_realloc(0, 0, align, size)`` when that is what it exports. The pointer is
        the guest's: :meth:`free` gives it back (if the module exports ``free``).

        ValueError if the module exports neither; MemoryError if the allocator returns
        NULL."""
        if size < 0:
            raise ValueError(f"cannot allocate {size} bytes")
        if isinstance(self.exports.get("malloc"), wasmtime.Func):
            ptr = self.call("malloc", size)
        elif isinstance(self.exports.get("cabi_realloc"), wasmtime.Func):
            ptr = self.call("cabi_realloc", 0, 0, align, size)
        else:
            raise ValueError("the module exports no allocator: alloc looks for a malloc "
                             "export, then cabi_realloc, and it has neither")
        ptr = _unsigned(ptr)
        if ptr == 0:
            raise MemoryError(f"the guest's allocator returned NULL for {size} bytes")
        return ptr

    def free(self, ptr: int) -> None:
        """Give ``ptr`` back to the guest's ``free`` export (ValueError if it has none)."""
        if not isinstance(self.exports.get("free"), wasmtime.Func):
            raise ValueError("the module exports no free function")
        self.call("free", _signed(ptr))

    def write_bytes(self, data: bytes | bytearray | memoryview) -> int:
        """``data`` copied into a fresh allocation (:meth:`alloc`); returns its pointer."""
        data = bytes(data)
        ptr = self.alloc(max(len(data), 1))
        self.write_memory(ptr, data)
        return ptr

    def write_string(self, text: str) -> int:
        """``text`` as a NUL-terminated UTF-8 string in a fresh allocation; returns its
        pointer (a C ``const char *``). ValueError if ``text`` holds a NUL character."""
        return self.write_bytes(_c_string(text))

    def write_argv(self, args: Sequence[str]) -> tuple[int, int]:
        """``args`` as C's ``argc, argv``: an array of pointers to NUL-terminated UTF-8
        strings, ending with a NULL pointer as ``main``'s does. The array and the strings are
        one allocation: ``free(argv)`` gives it all back. Returns ``(argc, argv)``."""
        strings = [_c_string(arg) for arg in _arguments(args)]
        table = 4 * (len(strings) + 1)
        block = self.alloc(table + sum(map(len, strings)), align=4)
        pointers, data, at = [], bytearray(), block + table
        for string in strings:
            pointers.append(at)
            data += string
            at += len(string)
        pointers.append(0)
        self.write_memory(block, b"".join(p.to_bytes(4, "little") for p in pointers) + data)
        return len(strings), block

    def read_string(self, ptr: int, max_length: int | None = None) -> str:
        """The NUL-terminated UTF-8 string at ``ptr`` (a C ``char *``), looking at most
        ``max_length`` bytes (default: up to the end of memory) for its NUL.

        ValueError if ``ptr`` is NULL or out of bounds, if no NUL comes within
        ``max_length`` bytes, or if the bytes are not UTF-8."""
        if ptr == 0:
            raise ValueError("read_string: the pointer is NULL")
        ptr = _unsigned(ptr)
        memory = self.exports.get("memory")
        size = memory.data_len(self.store) if isinstance(memory, wasmtime.Memory) else 0
        if ptr >= size:
            self._window(ptr, 1)  # the error for no memory, or for an address out of bounds
        limit = size - ptr if max_length is None else min(max_length, size - ptr)
        window = self._window(ptr, limit)
        end = -1
        for start in range(0, limit, 4096):  # C strings are short: never copy all memory
            found = window[start:start + 4096].tobytes().find(0)
            if found >= 0:
                end = start + found
                break
        if end < 0:
            raise ValueError(f"read_string: no NUL within {limit} bytes of {ptr:#x}")
        return str(window[:end], "utf-8")

    def write_memory(self, ptr: int, data: bytes) -> None:
        """Write ``data`` into the guest's exported memory at ``ptr``."""
        self._window(ptr, len(data))[:] = data

    def _window(self, ptr: int, length: int) -> memoryview:
        if ptr < 0 or length < 0:
            raise ValueError(f"bad guest memory range {ptr}+{length}")
        memory: GuestMemory | None = getattr(self.adapter, "memory", None)
        if memory is None:
            raise ValueError("the module exports no memory")
        try:
            return memory.window(ptr, length)
        except AbiViolation as exc:
            raise ValueError(str(exc)) from None

    @property
    def stdout(self) -> bytes:
        """What the guest wrote to stdout, if it was captured (no stream was given)."""
        return self._captured[0].getvalue() if self._captured[0] is not None else b""

    @property
    def stderr(self) -> bytes:
        """What the guest wrote to stderr, if it was captured."""
        return self._captured[1].getvalue() if self._captured[1] is not None else b""

    @property
    def closed(self) -> bool:
        return self.instance.destroyed

    def close(self) -> None:
        """Tear the client instance down, closing and flushing what it left open, then
        the stdio files opened here from paths. If a call was stopped or trapped
        (:attr:`stopped`), a file it left open with data not yet stored on a remote mount
        is not uploaded, as it may be half-written (see :class:`~virtwasi.runtime.WasiWorld`)."""
        try:
            if not self.instance.destroyed:
                with self.host.abandoning() if self.stopped else nullcontext():
                    self.host.world.destroy(self.instance)
        finally:  # a file that could not be saved says so once the rest is closed
            tracer, self._tracer = self._tracer, None
            if tracer is not None:
                tracer.detach()
            self._close_opened()

    def _close_opened(self) -> None:
        opened, self._opened = self._opened, []
        for stream in opened:
            stream.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
