"""Running WASI preview 1 modules: the Python API behind ``virtwasi run``.

A :class:`WasiWorld` is a world holding one WASI implementation instance, the virtual one,
given its storage capabilities as mounts; any number of wasm modules join it as clients
(:meth:`WasiWorld.client`), each in its own client instance with its own handle table. A
:class:`Session` is the common case: a world with exactly one client, closed together.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import wasmtime

from .client import (
    OUT_OF_FUEL_EXIT_CODE,
    OUT_OF_MEMORY_EXIT_CODE,
    TIMEOUT_EXIT_CODE,
    TRAP_EXIT_CODE,
    Client,
    Environment,
    GuestExit,
    GuestInterrupted,
    GuestOutOfFuel,
    GuestOutOfMemory,
    GuestStopped,
    GuestTimeout,
    GuestTrap,
    ImportFunc,
    InputSource,
    Limits,
    ModuleSource,
    OutputTarget,
    engine_flavor,
    make_engine,
)
from .compare.result import RunResult
from .component.client import ComponentClient, is_component
from .engine.interrupt import DEFAULT_SIGNALS
from .native import native_implementation
from .storage.base import Storage, UploadError
from .storage.hostdir import HostDirStorage
from .storage.mounts import MountError, MountSource, open_mounts, opened_here
from .storage.readonly import ReadOnlyStorage
from .virtual import virtual_implementation
from .wasi.trace import TraceTarget
from .world import Definition, Instance, Semantics, World

IMPLEMENTATIONS = ("virtual", "native")


@dataclass(frozen=True)
class Unsaved:
    """Written data a world's remote mount could not store, kept on the host instead:
    ``path`` as the guest named it, ``reason`` (an upload's failure, or a file still being
    written when its guest was stopped), and the host file ``kept`` (None if even keeping
    it failed)."""

    path: str
    reason: str
    kept: Path | None

    def __str__(self) -> str:
        where = f"; kept in {self.kept}" if self.kept is not None else ""
        return f"{self.path}: not saved ({self.reason}){where}"


class WasiWorld:
    """A world with one WASI implementation instance serving ``mounts`` to its clients.

    With no mounts, the clients share a fresh, empty, writable in-memory tree at ``/``
    (the native implementation: no preopened folder at all). Mounts are opened before
    anything else, so a bad one is reported at once. ``impl`` is ``virtual`` (the
    unprivileged library instance over storages) or ``native`` (the host-privileged one
    over host folders); both serve the same interface to the same client adapter. ``layers``
    (name, definition) are stacked on the implementation in order, each importing the one
    below as ``lower`` and exporting the same interface to the one above.

    ``timeout``, ``fuel``, ``max_memory`` and ``signals`` bound every client (see
    :class:`~virtwasi.client.Limits`): a call ended by one raises a
    :class:`GuestStopped`. With ``signals=DEFAULT_SIGNALS`` (SIGINT, SIGTERM), a signal
    ends a guest computing or blocked in the main thread with :class:`GuestInterrupted`.
    Signals and timeouts need epoch checks compiled into the guest, which cost a tight
    compute loop about a third more time: the default (no signals, no timeout) leaves them
    out, and leaves the process's signal handling alone.

    ``engine`` is one to run in instead of a new one: made by
    :func:`~virtwasi.client.make_engine` for these limits (epochs when there is a timeout
    or signals; fuel when there is fuel), so that a module compiled in it once serves many
    worlds (``virtwasi map`` keeps one per worker thread). A limit ends a guest by bumping
    the engine's epoch, which ends every guest running in it: share one engine only between
    worlds that run one at a time.

    Remote mounts opened here (S3, FTP) store what a guest wrote when it closes or syncs
    a file, and at its teardown what it left open, unless the guest was stopped or
    trapped: then a file left open is not published half-written. At :meth:`close`, a
    failed upload is retried once; what still cannot be stored is copied under
    :func:`~virtwasi.storage.unsaved.unsaved_folder` and listed in :attr:`unsaved`.
    """

    def __init__(
        self,
        mounts: Mapping[str, MountSource] | None = None,
        *,
        read_only: Iterable[str] = (),
        semantics: Semantics | str = Semantics.COMPONENT_MODEL,
        layers: Sequence[tuple[str, Definition]] = (),
        impl: str = "virtual",
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        signals: Iterable[int] = (),
        engine: wasmtime.Engine | None = None,
    ) -> None:
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown implementation {impl!r} (there are: "
                             f"{', '.join(IMPLEMENTATIONS)})")
        self.impl = impl
        self.limits = Limits(timeout, fuel, max_memory, tuple(signals))
        if mounts is None:
            mounts = {} if impl == "native" else {"/": "mem://"}
        self.mounts: dict[str, Storage] = open_mounts(mounts, read_only)
        self.unsaved: list[Unsaved] = []
        # Storages opened here from a path or URL are this world's to release at close.
        self._owned = [self.mounts[g] for g, src in mounts.items() if opened_here(src)]
        try:
            # The native implementation is the host's own: it serves host folders by path.
            if impl == "native":
                implementation = native_implementation(list(self._host_folders().items()))
                # It opens the folders itself: the storages were only the way to name them.
                self._release_storages()
            else:
                implementation = virtual_implementation(list(self.mounts.items()))
        except BaseException:
            self._release_storages()
            raise
        self.engine = engine or make_engine(self.limits.epochs, fuel is not None)
        self.flavor = engine_flavor(self.limits.epochs, fuel is not None)
        self.world = World(semantics)
        self.clients: list[Client] = []
        self._stack: list[Instance] = [self.world.instantiate(f"wasi-{impl}", implementation)]
        # Each layer imports the one below as "lower" and exports the same interface: a
        # virtualizer of a virtualizer. Clients import the top one.
        for name, layer in layers:
            self._stack.append(self.world.instantiate(name, layer, {"lower": self._stack[-1]}))

    @property
    def implementation(self) -> Instance:
        """The implementation instance, virtual or native."""
        return self._stack[0]

    @property
    def wasi(self) -> Instance:
        """The instance clients import: the top layer, or the implementation itself."""
        return self._stack[-1]

    @property
    def stack(self) -> tuple[Instance, ...]:
        """The implementation, then each layer in order."""
        return tuple(self._stack)

    def _host_folders(self) -> dict[str, Path]:
        folders = {}
        for guest, storage in self.mounts.items():
            if isinstance(storage, ReadOnlyStorage) and isinstance(storage.inner,
                                                                    HostDirStorage):
                raise MountError(f"{guest}: the native implementation serves host folders "
                                 "writable; to serve one read-only, leave out --impl native "
                                 "(the virtual implementation) or stack --world's read-only "
                                 "layer on native")
            if not isinstance(storage, HostDirStorage):
                raise MountError(f"{guest}: the native implementation serves host folders "
                                 "only (--dir, a path or a file:// mount)")
            folders[guest] = storage.root
        return folders

    @property
    def semantics(self) -> Semantics:
        return self.world.semantics

    def client(self, module: ModuleSource | wasmtime.Module, args: Sequence[str] = (),
               **options: Any) -> Client:
        """``module`` joined to this world as a new client; options as for :class:`Client`."""
        kind = ComponentClient if is_component(module) else Client
        joined = kind(self, module, args, **options)
        self.clients.append(joined)
        return joined

    def close(self) -> None:
        """Tear every client down (closing what each left open), then the world.

        A failed upload to a remote mount opened here is retried, then kept (see
        :attr:`unsaved`); one to a storage the caller opened raises its
        :class:`~virtwasi.storage.base.UploadError`, the data waiting in the storage."""
        failures = []
        for joined in self.clients:
            try:
                joined.close()
            except UploadError as exc:
                failures.append(exc)
        self._close(failures)

    def _close(self, failures: Sequence[UploadError], *, stopped: bool = False) -> None:
        """Close the world once its clients are torn down, ``failures`` their uploads';
        ``stopped``: its one client was stopped, so what the implementation itself still
        holds open (transparent types) is not published either."""
        held = [storage for storage in self.mounts.values()
                if not any(storage is owned for owned in self._owned)]
        with self.abandoning() if stopped else nullcontext():
            self.world.close()
        self._release_storages()
        if failures and any(getattr(storage, "unsaved", None) for storage in held):
            raise failures[0]  # in a storage the caller holds: the caller's to retry

    def _remote(self) -> list[tuple[str, Any]]:
        """The remote mounts opened here, (guest path, FsspecStorage)."""
        module = sys.modules.get("virtwasi.storage.fsspec_storage")
        if module is None:  # never imported: there is none
            return []
        return [(guest, storage) for guest, storage in self.mounts.items()
                if isinstance(storage, module.FsspecStorage)
                and any(storage is owned for owned in self._owned)]

    @contextmanager
    def abandoning(self) -> Iterator[None]:
        """While this lasts, files closed on remote mounts are not uploaded if they hold
        data written since they were last stored (a stopped guest's teardown)."""
        module = sys.modules.get("virtwasi.storage.fsspec_storage")
        with ExitStack() as stack:
            if module is not None:
                for storage in self.mounts.values():
                    if isinstance(storage, module.FsspecStorage):
                        stack.enter_context(storage.abandoning())
            yield

    def _release_storages(self) -> None:
        remote = self._remote()
        for storage in self._owned:
            with suppress(UploadError):  # kept unsaved, retried and reported below
                storage.close()
        folder = None
        for guest, storage in remote:
            if not storage.unsaved:
                continue
            with suppress(UploadError):
                storage.retry_uploads()  # once more at exit: the store may be back
            if storage.unsaved:
                from .storage.unsaved import record_kept, unsaved_run_folder

                folder = folder or unsaved_run_folder()
                base = guest.rstrip("/")
                kept = storage.keep_unsaved(folder / guest.strip("/"))
                self.unsaved += [Unsaved(f"{base}/{u.path}", u.reason, u.kept) for u in kept]
                with suppress(OSError):  # what each was meant for, for virtwasi unsaved
                    record_kept(folder, {u.kept: (storage.url(u.path), u.reason)
                                         for u in kept if u.kept is not None})
            with suppress(UploadError):
                storage.close()  # releases the filesystem once nothing is left unsaved
        self._owned.clear()

    def __enter__(self) -> WasiWorld:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Session(Client):
    """One module (or component) in a world of its own, ready to run or call exports.

    ``mounts``, ``read_only``, ``semantics``, ``layers`` and ``impl`` build the world, and
    ``timeout``, ``fuel``, ``max_memory`` and ``signals`` bound it, run in ``engine`` if
    given (see :class:`WasiWorld`);
    the other options are the client's (see :class:`Client`): ``program_name`` is the
    guest's argv[0] (default: the module file's name, or ``module`` for bytes). Closing the
    session tears the client down, then the world.
    """

    def __init__(
        self,
        module: ModuleSource,
        args: Sequence[str] = (),
        *,
        mounts: Mapping[str, MountSource] | None = None,
        read_only: Iterable[str] = (),
        semantics: Semantics | str = Semantics.COMPONENT_MODEL,
        impl: str = "virtual",
        layers: Sequence[tuple[str, Definition]] = (),
        env: Environment | None = None,
        stdin: InputSource | None = None,
        stdout: OutputTarget | None = None,
        stderr: OutputTarget | None = None,
        program_name: str | None = None,
        imports: Mapping[str, Mapping[str, ImportFunc]] | None = None,
        on_compile: Callable[[int], None] | None = None,
        trace: TraceTarget | None = None,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        signals: Iterable[int] = (),
        engine: wasmtime.Engine | None = None,
    ) -> None:
        host = WasiWorld(mounts, read_only=read_only, semantics=semantics, layers=layers,
                         impl=impl, timeout=timeout, fuel=fuel, max_memory=max_memory,
                         signals=signals, engine=engine)
        try:
            super().__init__(host, module, args, env=env, stdin=stdin, stdout=stdout,
                             stderr=stderr, name=program_name, imports=imports,
                             on_compile=on_compile, trace=trace)
        except BaseException:
            host.close()
            raise

    def __new__(cls, module: ModuleSource, *args: Any, **options: Any) -> Session:
        if cls is Session and is_component(module):  # the same API over a component
            return super().__new__(ComponentSession)
        return super().__new__(cls)

    @property
    def world(self) -> World:
        return self.host.world

    def close(self) -> None:
        failures = []
        try:
            super().close()
        except UploadError as exc:
            failures.append(exc)
        self.host._close(failures, stopped=self.stopped)

    def __enter__(self) -> Session:
        return self


class ComponentSession(Session, ComponentClient):
    """A :class:`Session` whose module is a WASI 0.2 component (``Session`` makes one)."""


def run(module: ModuleSource, args: Sequence[str] = (), **options: Any) -> RunResult:
    """Run ``module``'s ``_start`` with ``args``; options as for :class:`Session`.

    Raises :class:`GuestStopped` when a signal or a limit ended the guest."""
    with Session(module, args, **options) as session:
        code = session.start()
        return RunResult(code, session.stdout, session.stderr)


__all__ = [
    "DEFAULT_SIGNALS",
    "OUT_OF_FUEL_EXIT_CODE",
    "OUT_OF_MEMORY_EXIT_CODE",
    "TIMEOUT_EXIT_CODE",
    "TRAP_EXIT_CODE",
    "Client",
    "ComponentClient",
    "ComponentSession",
    "GuestExit",
    "GuestInterrupted",
    "GuestOutOfFuel",
    "GuestOutOfMemory",
    "GuestStopped",
    "GuestTimeout",
    "GuestTrap",
    "ImportFunc",
    "Limits",
    "Session",
    "Unsaved",
    "WasiWorld",
    "run",
]
