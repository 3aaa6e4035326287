"""Running a WASI preview 1 module: the Python API behind ``virtwasi run``.

A :class:`Session` builds a world: the virtual WASI implementation instance, given its
storage capabilities as mounts, and a client instance holding the module and its preview 1
adapter. The module's imports are raw host functions bound to the adapter. When the session
closes (after an exit, a trap, or when the caller is done with a reactor), the client
instance is torn down: every descriptor it still held is dropped, and the implementation's
destructor flushes and closes the file behind it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import wasmtime

from .engine import HostFunc, TrapBox, define, memory_view
from .outcome import RunResult
from .storage.base import Storage
from .wasi.abi import IMPORTS
from .wasi.errors import WasiError, errno_of
from .wasi.memory import GuestMemory
from .wasi.preview1 import Preview1, ProcExit
from .wasi.virtual import virtual_wasi
from .world import Context, Func, ResourceType, Semantics, World

WASI_MODULE = "wasi_snapshot_preview1"
TRAP_EXIT_CODE = 134  # what the wasmtime CLI exits with when the guest traps


def default_mounts() -> dict[str, Storage]:
    """The embedded default: a fresh, empty, writable in-memory tree at ``/``."""
    from .storage.memfs import MemoryStorage

    return {"/": MemoryStorage()}


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_exceptions = True  # some real toolchains emit exception-handling code
    return wasmtime.Engine(config)


class GuestExit(Exception):
    """A call into the guest ended with ``proc_exit``."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the guest exited with code {code}")
        self.code = code


class GuestTrap(Exception):
    """A call into the guest trapped; the message is wasmtime's."""


class Session:
    """One instantiated module with its world, ready to run ``_start`` or call exports.

    stdout/stderr stream to the given binary files as the guest writes; a stream not given
    is captured (see :attr:`stdout` and :attr:`stderr`). ``stdin`` may be bytes or a file.
    """

    def __init__(
        self,
        module: str | Path | bytes | bytearray,
        args: Sequence[str] = (),
        *,
        mounts: Mapping[str, Storage] | None = None,
        env: Mapping[str, str] | None = None,
        stdin: BinaryIO | bytes | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        semantics: Semantics | str = Semantics.COMPONENT_MODEL,
        program_name: str | None = None,
    ) -> None:
        self.engine = _engine()
        if isinstance(module, bytes | bytearray):
            self.module = wasmtime.Module(self.engine, bytes(module))
            name = program_name or "module"
        else:
            self.module = wasmtime.Module.from_file(self.engine, str(module))
            name = program_name or Path(module).name
        self._captured = (io.BytesIO() if stdout is None else None,
                          io.BytesIO() if stderr is None else None)
        self.out: BinaryIO = stdout or self._captured[0]  # type: ignore[assignment]
        self.err: BinaryIO = stderr or self._captured[1]  # type: ignore[assignment]
        inp = io.BytesIO(stdin) if isinstance(stdin, bytes) else stdin

        self.world = World(semantics)
        chosen = dict(mounts) if mounts is not None else default_mounts()
        wasi = self.world.instantiate("wasi-virtual", virtual_wasi(list(chosen.items())))
        contexts: list[Context] = []

        def client(ctx: Context) -> dict[str, Func | ResourceType]:
            contexts.append(ctx)
            return {}

        self.client = self.world.instantiate("client", client, {"wasi": wasi})
        try:
            self.adapter = Preview1(
                contexts[0].imports["wasi"], [name, *args],
                [f"{k}={v}" for k, v in (env or {}).items()], inp, self.out, self.err,
            )
            self._instantiate()
        except BaseException:
            self.close()
            raise

    def _instantiate(self) -> None:
        self.store = wasmtime.Store(self.engine)
        linker = wasmtime.Linker(self.engine)
        self._box = TrapBox()
        # wasmtime keeps raw pointers to these callbacks: they live as long as the session.
        self._host_funcs: list[HostFunc] = []
        for fname, fn in self.adapter.functions().items():
            results: tuple[str, ...] = () if fname == "proc_exit" else ("i32",)
            self._host_funcs.append(define(
                linker, WASI_MODULE, fname, IMPORTS[fname], results, fn, self._box,
                answered=(WasiError, OSError), answer=errno_of,
            ))
        self.instance = linker.instantiate(self.store, self.module)
        self.exports = self.instance.exports(self.store)
        memory = self.exports.get("memory")
        if isinstance(memory, wasmtime.Memory):
            self.adapter.memory = GuestMemory(memory_view(self.store, memory))

    def call(self, export: str, *args: int) -> Any:
        """Call an exported function; raises GuestExit on proc_exit, GuestTrap on a trap."""
        func = self.exports.get(export)
        if not isinstance(func, wasmtime.Func):
            raise ValueError(f"the module exports no function named {export!r}")
        self._box.error = None
        try:
            return func(self.store, *args)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as trap:
            if isinstance(self._box.error, ProcExit):
                raise GuestExit(self._box.error.code) from None
            raise GuestTrap(str(trap)) from None

    def start(self) -> int:
        """Run ``_start`` as a WASI command does; returns the exit code (134 on a trap)."""
        if not isinstance(self.exports.get("_start"), wasmtime.Func):
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

    @property
    def stdout(self) -> bytes:
        """What the guest wrote to stdout, if it was captured (no stream was given)."""
        return self._captured[0].getvalue() if self._captured[0] is not None else b""

    @property
    def stderr(self) -> bytes:
        """What the guest wrote to stderr, if it was captured."""
        return self._captured[1].getvalue() if self._captured[1] is not None else b""

    def close(self) -> None:
        """Tear the client down (closing and flushing what it left open), then the world."""
        if not self.client.destroyed:
            self.world.destroy(self.client)
        self.world.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def run(
    module: str | Path | bytes | bytearray,
    args: Sequence[str] = (),
    **options: Any,
) -> RunResult:
    """Run ``module``'s ``_start`` with ``args``; options as for :class:`Session`."""
    with Session(module, args, **options) as session:
        code = session.start()
        return RunResult(code, session.stdout, session.stderr)


__all__ = ["GuestExit", "GuestTrap", "Session", "default_mounts", "run"]
