"""A WASI 0.2 component running as a client of a WASI implementation.

The component is instantiated by virtwasi's linker (:mod:`.instance`) for one client
instance of the world, and its imports are served by :mod:`virtwasi.wasip2` over the same
implementation (and layers) a preview 1 module's adapter calls. Everything else is the
:class:`~virtwasi.client.Client`'s: arguments, environment, stdio, limits, exit codes,
teardown. A component exporting ``wasi:cli/run`` is a command (:meth:`start`); any exported
function can be called by name with Python values (:meth:`call`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import wasmtime

from ..client import TRAP_EXIT_CODE, Client, GuestExit, GuestTrap, ModuleSource
from ..engine import TrapBox
from ..world import Context, Semantics
from ..world import Trap as WorldTrap
from . import read_component
from .binary import ComponentReadError, WasmKind, wasm_kind
from .hosting import HostInterface, unversioned
from .instance import ComponentInstance, Function, HostFunction, call_export
from .layout import Shape
from .model import Component, StringEncoding
from .values import Ok, Trap

RUN = "wasi:cli/run#run"


def is_component(source: ModuleSource | wasmtime.Module) -> bool:
    """Whether ``source`` (bytes, or a path to a file) is a component, by its preamble;
    anything unreadable is left for the module loader to report."""
    if isinstance(source, wasmtime.Module):
        return False
    if isinstance(source, bytes | bytearray):
        head = bytes(source[:8])
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(8)
        except OSError:
            return False
    try:
        return wasm_kind(head) is WasmKind.COMPONENT
    except ComponentReadError:  # text, or not wasm at all: the module loader says which
        return False


class ComponentClient(Client):
    """``component`` instantiated as a client of ``host``'s WASI implementation; options
    as for :class:`~virtwasi.client.Client`. ``imports`` serve imported instances other
    than WASI's: ``{"my:pkg/iface": {"func-name": callable}}``, each callable taking and
    returning the canonical ABI's Python values (see :mod:`virtwasi.component.hosting`).
    Components run under the component-model semantics only; ``trace`` follows preview 1
    calls, which a component does not make, and is refused."""

    component: Component
    instance_of_component: ComponentInstance

    def _load(self, module: ModuleSource | wasmtime.Module,
              on_compile: Callable[[int], None] | None) -> None:
        if self.host.semantics is not Semantics.COMPONENT_MODEL:
            raise ValueError(f"a component runs under the component-model semantics, "
                             f"not {self.host.semantics.value}")
        assert not isinstance(module, wasmtime.Module)
        data = bytes(module) if isinstance(module, bytes | bytearray) else Path(
            module).read_bytes()
        self.component = _read(data)
        self.module = None  # type: ignore[assignment]
        self._on_compile = on_compile

    def _join(self, ctx: Context, argv: list[str], environ: list[str],
              stdin: BinaryIO | None) -> None:
        from ..wasip2 import wasi_host

        if self._tracer is not None:
            raise ValueError("trace follows preview 1 calls, and a component makes none")
        host = self.host
        self.store = wasmtime.Store(host.engine)
        if self.limits.max_memory is not None:
            self.store.set_limits(memory_size=self.limits.max_memory)
        if self.limits.fuel is not None:
            self.store.set_fuel(self.limits.fuel)
        if self.limits.epochs:
            self.store.set_epoch_deadline(1)
        self._box = TrapBox()
        env = [tuple(entry.split("=", 1)) for entry in environ]
        hosts: dict[str, HostInterface] = dict(wasi_host(
            ctx, args=argv, env=env, stdin=stdin, stdout=self.out,  # type: ignore[arg-type]
            stderr=self.err))
        for name, funcs in self._extra_imports.items():
            hosts[name] = HostInterface(dict(funcs))
        self.exports = {}
        self.instance_of_component = self._run_guest(lambda: ComponentInstance(
            self.component, self.instance, ctx, self.store, hosts, self._box,
            flavor=host.flavor, on_compile=self._on_compile))

    @property
    def functions(self) -> Mapping[str, Function]:
        """The exported functions, by name (``interface#function`` for an instance's)."""
        return self.instance_of_component.exports

    def _function(self, export: str) -> Function:
        functions = self.functions
        found = functions.get(export)
        if found is None:  # any version of an interface
            wanted = _unversioned_export(export)
            found = next((f for name, f in functions.items()
                          if _unversioned_export(name) == wanted), None)
        if found is None:
            raise ValueError(f"the component exports no function named {export!r} "
                             f"(it exports: {', '.join(sorted(functions)) or 'none'})")
        return found

    def signature(self, export: str) -> tuple[list[tuple[str, Shape]], Shape | None]:
        """The parameters (name, shape) and the result shape of an exported function."""
        func = self._function(export)
        abi = func.abi(StringEncoding.UTF8) if isinstance(func, HostFunction) else func.abi
        names = [name for name, _ in abi.func_type.params]
        return ([(n, p.shape) for n, p in zip(names, abi.params, strict=True)],
                None if abi.result is None else abi.result.shape)

    def _require_export(self, export: str) -> None:
        self._function(export)

    def initialize(self) -> None:
        self._initialized = True  # a component's start is its instantiation

    def _invoke(self, export: str, *args: Any) -> Any:
        func = self._function(export)

        def enter() -> Any:
            try:
                return call_export(self.instance_of_component, func, args)
            except (Trap, WorldTrap) as trap:  # a rule broken outside core code
                raise GuestTrap(str(trap)) from None

        return self._run_guest(enter)

    def start(self) -> int:
        """Run ``wasi:cli/run``'s ``run`` as a command; its exit code (``run`` answering
        an error is 1, as wasmtime exits; a trap is 134)."""
        try:
            self._function(RUN)
        except ValueError:
            raise ValueError("the component exports no wasi:cli/run: it is not a WASI "
                             "command (call its functions by name)") from None
        try:
            result = self.call(RUN)
        except GuestExit as exit_:
            return exit_.code
        except GuestTrap as trap:
            self.err.write(f"Error: {trap}\n".encode())
            self.err.flush()
            return TRAP_EXIT_CODE
        return 0 if isinstance(result, Ok) else 1


_READ: dict[bytes, Component] = {}
_KEPT = 32


def _read(data: bytes) -> Component:
    """``data`` read, or the component read from the same bytes lately: a batch runs one
    component many times, and reading it is a fair share of a small run."""
    key = hashlib.sha256(data).digest()
    found = _READ.pop(key, None)
    if found is None:
        found = read_component(data)
    if len(_READ) >= _KEPT:
        _READ.pop(next(iter(_READ)))
    _READ[key] = found  # the most recent last
    return found


def _unversioned_export(name: str) -> str:
    interface, _, func = name.partition("#")
    return f"{unversioned(interface)}#{func}"
