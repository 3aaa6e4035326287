"""A wasm client dies holding open files: exit, trap, or torn down from outside.

A program (holder.wasm, a C program that keeps files open between calls) creates a file,
writes a line to it and never closes it. Then it dies, one of three ways: it calls exit
(proc_exit) with the file still open; it crashes (an `unreachable` trap) right after
writing; or, still alive and idle, it is torn down from outside by its embedder. Each way
is followed by what a runtime does with a dead client, as an OS reaps a dead process: it
tears the client's instance down (the third way is that teardown alone, with no exit or
trap first). Each runs on the native implementation and on the virtual one under the
component model, the 2021 proposal and transparent types. The virtual implementation
serves an fsspec in-memory store through FsspecStorage, which, like an object store, keeps
a file's new bytes in a local spill until the file is flushed or closed: until then the
store shows none of them. So what reached the store shows whether anyone closed the file.
A trap may come in the middle of a write, so there the teardown closes the file without
publishing it: the line is kept unsaved in the storage (for its owner to copy out), as
``virtwasi run`` keeps it on the host.

Then the same three deaths for a WASI 0.2 component (holder.component.wasm, which keeps its
descriptors open between calls and can exit or trap on request), on the native
implementation and on the virtual one: its descriptors are the implementation's handles in
the component instance's own table, so its teardown ends them as it ends a module's.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fsspec

from virtwasi.client import Client, GuestExit, GuestTrap
from virtwasi.component.client import ComponentClient
from virtwasi.demo.narrate import Narration
from virtwasi.runtime import WasiWorld
from virtwasi.storage.fsspec_storage import FsspecStorage
from virtwasi.world import Semantics

HOLDER = Path(__file__).resolve().parent / "programs" / "holder.wasm"
COMPONENT = Path(__file__).resolve().parent / "programs" / "holder.component.wasm"
LINE = b"every byte of this line was written before the end\n"
DEATHS = ["exit", "trap", "torn down"]
ORDER = ["native", "component-model", "proposal-2021", "transparent"]
COMPONENTS = ["component, native", "component, virtual"]
SEMANTICS = {
    "native": Semantics.COMPONENT_MODEL,  # the native implementation keeps its own tables
    "component-model": Semantics.COMPONENT_MODEL,
    "proposal-2021": Semantics.PROPOSAL_2021,
    "transparent": Semantics.TRANSPARENT,
    "component, native": Semantics.COMPONENT_MODEL,
    "component, virtual": Semantics.COMPONENT_MODEL,
}


@dataclass
class Death:
    how: str = ""  # what the death looked like from outside
    open_before: int = 0  # files open in the backend just before teardown
    stored_before: int = 0  # bytes of the line in the backend just before teardown
    open_after: int = 0  # ... and just after the runtime tore the client down
    stored_after: int = 0
    stored_at_end: int = 0  # after the whole world, the implementation too, was closed
    unsaved_after: int = 0  # closed, its line kept in the storage instead of published

    def cell(self) -> str:
        state = "closed" if self.open_after == 0 else f"{self.open_after} LEAKED"
        kept = ", kept unsaved" if self.unsaved_after else ""
        return f"{state}; {self.stored_after}/{len(LINE)} B{kept}"


class Backend:
    """Where the files live, and how to count what is open and what is stored there."""

    def __init__(self, native: bool, folder: str) -> None:
        self.native = native
        self.folder = Path(folder).resolve()
        self.fs = fsspec.filesystem("memory")  # one store per process: a private root
        self.root = f"/virtwasi-client-dies-{uuid.uuid4().hex}"
        self.storage = FsspecStorage(self.fs, self.root)
        self.mounts = {"/": str(self.folder) if native else self.storage}

    def open_files(self, client: Client) -> int:
        if not self.native:  # a file kept unsaved is closed: the storage holds its data
            return self.storage.open_files - len(self.storage.unsaved)
        # The host's own view: file descriptors of this process open on files in the folder.
        inside = str(self.folder) + os.sep
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith(inside)
            except OSError:
                continue
        return count

    def stored(self, name: str) -> int:
        """How many bytes of LINE the store holds for ``name``."""
        if self.native:
            data = (self.folder / name).read_bytes()
        elif self.fs.exists(f"{self.root}/{name}"):  # a new name is stored with its data
            data = bytes(self.fs.cat_file(f"{self.root}/{name}"))
        else:
            data = b""
        return len(data) if LINE.startswith(data) else -1

    def clean(self) -> None:
        if not self.native and self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)


def die(client: Client, how: str) -> str:
    """End ``client`` the way ``how`` says; what that looked like from outside."""
    component = isinstance(client, ComponentClient)
    try:
        if how == "exit":
            client.call("quit") if component else client.call("die_exit", 7)
        elif how == "trap":
            client.call("crash") if component else client.call("die_trap")
        else:
            return "still running, idle"
    except GuestExit as exited:
        return f"exited with code {exited.code}"
    except GuestTrap as trap:
        return "trapped: `unreachable` executed" if "unreachable" in str(trap) else "trapped"
    return "returned?"


def story(impl: str, how: str, say: Narration) -> Death:
    death = Death()
    name = how.replace(" ", "-") + ".txt"
    with tempfile.TemporaryDirectory(prefix="virtwasi-client-dies-") as folder:
        native = impl.endswith("native")
        backend = Backend(native, folder)
        try:
            host = WasiWorld(backend.mounts, semantics=SEMANTICS[impl],
                             impl="native" if native else "virtual")
            with host:
                if impl in COMPONENTS:
                    client = host.client(COMPONENT, name="victim")
                    fd = client.call("create", name)
                    wrote = client.call("put", fd, LINE.decode())
                else:
                    client = host.client(HOLDER, name="victim")
                    buffer = client.call("text")
                    client.write_memory(buffer, f"/{name}\0".encode())
                    fd = client.call("create")
                    client.write_memory(buffer, LINE)
                    wrote = client.call("put", fd, len(LINE))
                kept_as = "descriptor" if impl in COMPONENTS else "fd"
                say.step("victim", f"open /{name}, write {len(LINE)} B, keep {kept_as} {fd}",
                         f"wrote {wrote} B")
                death.how = die(client, how)
                death.open_before = backend.open_files(client)
                death.stored_before = backend.stored(name)
                say.step("victim", f"dies: {how}", death.how)
                say.step("store", "holds, before any teardown",
                         f"{death.stored_before} of {len(LINE)} B; {death.open_before} open")
                client.close()  # the runtime reclaims the client: its instance is torn down
                death.open_after = backend.open_files(client)
                death.stored_after = backend.stored(name)
                death.unsaved_after = len(backend.storage.unsaved)
                kept = "; kept unsaved" if death.unsaved_after else ""
                say.step("runtime", "tears the client instance down",
                         f"{death.stored_after} of {len(LINE)} B; {death.open_after} open{kept}")
            death.stored_at_end = backend.stored(name)
            if impl == "transparent":
                say.step("runtime", "closes the whole world, implementation too",
                         f"{death.stored_at_end} of {len(LINE)} B, at last")
        finally:
            backend.clean()
    return death


def main() -> int:
    say = Narration("client-dies: a wasm program dies holding open files, three ways")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results: dict[tuple[str, str], Death] = {}
    for impl in ORDER + COMPONENTS:
        say.section(impl if "native" in impl or impl in COMPONENTS
                    else f"{impl} (virtual implementation)")
        for how in DEATHS:
            results[impl, how] = story(impl, how, say)

    say.section("after the runtime tore the dead client down")
    say.say("Each cell: whether the file was closed, and how many bytes of the line reached "
            "the store.")
    say.columns(["death", *ORDER, *COMPONENTS],
                [[how, *(results[impl, how].cell() for impl in ORDER + COMPONENTS)]
                 for how in DEATHS])

    say.section("what this shows")
    everything = len(LINE)

    def all_deaths(impl: str, test: Callable[[Death], bool]) -> bool:
        return all(test(results[impl, how]) for how in DEATHS)

    say.say("Native: the host-privileged implementation holds the real file descriptors, "
            "as representations of its own private type, and when the client is torn down, "
            "however it ended, each handle it held is dropped and the destructor closes the "
            "fd: the same mechanism the virtual implementation uses, with the host's "
            "privilege behind it. Its writes went straight to the host, so they were stored "
            "before the death too.")
    say.claim("native: after each death the runtime closes the file; every byte is stored",
              all_deaths("native", lambda d: d.open_before == 1 and d.open_after == 0
                         and d.stored_after == everything))
    say.say("Private resource types: the client's handles live in the client's own table, "
            "so tearing the client down drops each of them, and dropping the last handle to "
            "a descriptor runs its destructor, inside the implementation: the file is "
            "flushed and closed. Before the teardown the store held none of the line, so the "
            "flush is the destructor's doing. After a trap, which may have cut a write short, "
            "the destructor closes the file without publishing it: the storage keeps the line "
            "as unsaved data.")

    def reaped(d: Death) -> bool:
        stored = (d.stored_after == 0 and d.unsaved_after == 1 if d.how.startswith("trapped")
                  else d.stored_after == everything and d.unsaved_after == 0)
        return d.open_before == 1 and d.stored_before == 0 and d.open_after == 0 and stored

    for impl in ("component-model", "proposal-2021"):
        say.claim(f"{impl}: each death leaves the file open and unflushed until teardown, "
                  "which closes it: every byte stored after an exit or a teardown, kept "
                  "unsaved after a trap", all_deaths(impl, reaped))
    say.say("Transparent: the descriptors are bare integers in the implementation's own "
            "table; the client's table holds nothing, so tearing the client down tells the "
            "implementation nothing. Every file stays open and its line stays in the spill. "
            "Only tearing down the implementation itself, and with it every other client's "
            "files, finally closes them.")
    leaked = sum(results["transparent", how].open_after for how in DEATHS)
    say.claim(f"transparent: all three deaths leak the open file ({leaked} leaked), and "
              "none of the line reaches the store",
              all_deaths("transparent", lambda d: d.open_after == 1 and d.stored_after == 0))
    say.claim("transparent: the line is stored only when the whole implementation is torn down",
              all_deaths("transparent", lambda d: d.stored_at_end == everything))
    say.say("Components: the component's descriptors are the implementation's handles in "
            "its own table, so its teardown drops them, whether it exited, trapped or was "
            "torn down alive: exactly what happens for a module's fds.")
    say.claim("component, native: after each death the runtime closes the file; every byte "
              "is stored", all_deaths("component, native",
                                      lambda d: d.open_before == 1 and d.open_after == 0
                                      and d.stored_after == everything))
    say.claim("component, virtual: each death leaves the file open and unflushed until "
              "teardown, which closes it, as for a module under the component model",
              all_deaths("component, virtual", reaped))
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
