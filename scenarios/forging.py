"""Forging an fd: a wasm program guesses fd numbers and reads another program's secret file.

Two unmodified wasm programs are clients of one WASI implementation. Alice runs holder.wasm,
a C program that keeps files open between calls: she creates /secret.txt, writes the vault
code to it and keeps it open. Mallory runs fdscan.wasm, a C program that creates a file of
her own and then calls fd_read on every fd number from 3 to 32, printing what each gave. The
same two programs run four times: on the virtual implementation (a library instance, with no
more privilege than any other) under transparent types, under the component model and under
the 2021 proposal, and on the native implementation (the host's own WASI).

Then the same story with two WASI 0.2 components (holder.component.wasm, whose core code can
read any handle index it is told) as clients of one virtual implementation, side by side with
the native one. A component names a descriptor by its index in its own handle table, and the
component model answers an index it does not hold with a trap, which leaves the instance
unusable: Mallory's first guess is her last.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from virtwasi.demo.narrate import Narration
from virtwasi.runtime import GuestTrap, WasiWorld
from virtwasi.wasi.abi import Errno
from virtwasi.world import Semantics

PROGRAMS = Path(__file__).resolve().parent / "programs"  # built from tests/fixtures
HOLDER = PROGRAMS / "holder.wasm"
FDSCAN = PROGRAMS / "fdscan.wasm"
COMPONENT = PROGRAMS / "holder.component.wasm"
SECRET = b"the vault code is 4-8-15-16\n"
MINE = "my own notes"  # what fdscan writes to its own file
SCANNED = range(3, 33)


@dataclass(frozen=True)
class Column:
    name: str
    semantics: Semantics
    impl: str
    rule: str


COLUMNS = [
    Column("transparent", Semantics.TRANSPARENT, "virtual",
           "Transparent types, \"take one\" in the notes: a descriptor is a bare integer "
           "indexing the implementation's own table, and an fd is that integer (fd 3 is slot "
           "1, fd 4 slot 2, ...). Every client of the implementation shares the one table, "
           "so every client shares one fd namespace."),
    Column("component-model", Semantics.COMPONENT_MODEL, "virtual",
           "Private resource types: only the implementation can make a descriptor or see "
           "inside one. Each client's fds name handles in the client's own handle table, "
           "which no other instance can read or index."),
    Column("proposal-2021", Semantics.PROPOSAL_2021, "virtual",
           "The 2021 proposal's private types, with copyable ref-counted handles: the same "
           "per-client tables, so the same isolation."),
    Column("native", Semantics.COMPONENT_MODEL, "native",
           "The host's own WASI over a host folder: each client has its own table of real "
           "host file descriptors, as every WASI runtime gives each instance."),
]


@dataclass
class Outcome:
    alice_fd: int = 0
    mallory_fd: int = 0
    exit_code: int = -1
    scan: dict[int, str] = field(default_factory=dict)  # fd -> what fd_read gave
    lines: list[str] = field(default_factory=list)  # fdscan's own output, as printed


def errno_name(code: int) -> str:
    return "E" + Errno(code).name


def reading(line: str) -> tuple[int, str] | None:
    """One line of fdscan's output as (fd, what it gave), in a few words."""
    found = re.match(r'fd (\d+): (?:errno (\d+) \(.*\)|read (\d+) bytes "(.*)")$', line)
    if found is None:
        return None
    fd, errno, _, text = found.groups()
    if errno is not None:
        return int(fd), errno_name(int(errno))
    if text.strip() == SECRET.decode().strip():
        return int(fd), "ALICE'S SECRET"
    return int(fd), "her own file" if text.strip() == MINE else f"read {text!r}"


def story(column: Column, say: Narration) -> Outcome:
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="virtwasi-forging-") as folder:
        mounts = {"/": folder} if column.impl == "native" else None  # virtual: in memory
        with WasiWorld(mounts, semantics=column.semantics, impl=column.impl) as host:
            alice = host.client(HOLDER, name="alice")
            buffer = alice.call("text")
            alice.write_memory(buffer, b"/secret.txt\0")
            out.alice_fd = alice.call("create")
            say.step("alice", "open('/secret.txt', O_CREAT|O_RDWR)", f"fd {out.alice_fd}")
            alice.write_memory(buffer, SECRET)
            wrote = alice.call("put", out.alice_fd, len(SECRET))
            say.step("alice", f"write(fd {out.alice_fd}, the vault code)",
                     f"{wrote} bytes; she keeps it open")
            mallory = host.client(FDSCAN, ["/mallory.txt"], name="mallory")
            out.exit_code = mallory.start()
            out.lines = mallory.stdout.decode().splitlines()
            for line in out.lines:
                if line.startswith("opened "):
                    out.mallory_fd = int(line.rsplit(" ", 1)[1])
                got = reading(line)
                if got is not None:
                    out.scan[got[0]] = got[1]
            say.step("mallory", "open('/mallory.txt', O_CREAT|O_RDWR)", f"fd {out.mallory_fd}")
            hits = [f"fd {fd}: {what}" for fd, what in out.scan.items() if what[0] != "E"]
            errors = sorted({what for what in out.scan.values() if what[0] == "E"})
            say.step("mallory", f"read() on each of fds {SCANNED[0]}..{SCANNED[-1]}",
                     "; ".join(hits) or "nothing")
            say.step("mallory", f"  ...the other {len(SCANNED) - len(hits)} fds",
                     ", ".join(errors) or "nothing")
    return out


@dataclass
class ComponentOutcome:
    alice_handle: int = 0
    mallory_handle: int = 0
    peeks: dict[int, str] = field(default_factory=dict)  # handle index -> what peek gave


PEEKED = range(1, 6)


def peeked(data: bytes) -> str:
    if data == SECRET:
        return "ALICE'S SECRET"
    if data == MINE.encode():
        return "her own file"
    return "nothing (an error: a directory)" if not data else f"read {data!r}"


def trap_reason(trap: GuestTrap) -> str:
    found = re.findall(r"\[([a-z-]+)\]", str(trap))
    return f"trap: {found[-1]}" if found else f"trap: {str(trap).splitlines()[-1].strip()}"


def component_story(impl: str, say: Narration) -> ComponentOutcome:
    out = ComponentOutcome()
    with tempfile.TemporaryDirectory(prefix="virtwasi-forging-") as folder:
        mounts = {"/": folder} if impl == "native" else None
        with WasiWorld(mounts, impl=impl) as host:
            alice = host.client(COMPONENT, name="alice")
            out.alice_handle = alice.call("create", "secret.txt")
            alice.call("put", out.alice_handle, SECRET.decode())
            say.step("alice", "open-at('secret.txt'), write(the vault code)",
                     f"descriptor {out.alice_handle}; she keeps it")
            mallory = host.client(COMPONENT, name="mallory")
            out.mallory_handle = mallory.call("create", "mallory.txt")
            mallory.call("put", out.mallory_handle, MINE)
            say.step("mallory", "open-at('mallory.txt'), write(her notes)",
                     f"descriptor {out.mallory_handle}")
            for index in PEEKED:
                try:
                    out.peeks[index] = peeked(mallory.call("peek", index))
                except GuestTrap as trap:
                    out.peeks[index] = trap_reason(trap)
                say.step("mallory", f"descriptor.read(handle {index})", out.peeks[index])
    return out


def components(say: Narration) -> None:
    say.section("the same story with two components")
    say.say(__doc__.split("\n\n")[-1] if __doc__ else "")
    results = {}
    for impl in ("virtual", "native"):
        say.section(f"components, {impl} implementation")
        results[impl] = component_story(impl, say)
    virtual = results["virtual"]
    say.say("Index 1 is Mallory's preopen (reading a directory is an error), 2 her own file. "
            "Alice's secret is also index 2, in Alice's table: Mallory's 2 is her own.")
    first_foreign = max(virtual.mallory_handle, 1) + 1
    for impl, got in results.items():
        say.claim(f"components, {impl}: Mallory reads her own file and never Alice's secret",
                  got.peeks.get(got.mallory_handle) == "her own file"
                  and "ALICE'S SECRET" not in got.peeks.values())
        say.claim(f"components, {impl}: the first index Mallory does not hold traps, and "
                  "after that trap she is locked out: every later call traps",
                  got.peeks.get(first_foreign) == "trap: invalid-handle"
                  and all(got.peeks[i] == "trap: instance-trapped"
                          for i in PEEKED if i > first_foreign))
    say.claim("components: the virtual implementation answers Mallory exactly as native does",
              results["virtual"].peeks == results["native"].peeks)


def main() -> int:
    say = Narration("forging: a wasm program guesses fd numbers to read another's secret")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results: dict[str, Outcome] = {}
    for column in COLUMNS:
        say.section(f"{column.name} ({column.impl} implementation)")
        say.say(column.rule)
        results[column.name] = story(column, say)

    say.section("what mallory's fd_read got, fd by fd")
    names = [c.name for c in COLUMNS]
    rows = [[f"fd {fd}", *(results[n].scan.get(fd, "?") for n in names)] for fd in range(3, 7)]
    rest = range(7, SCANNED[-1] + 1)
    rows.append([f"fds {rest[0]}-{rest[-1]}",
                 *(", ".join(sorted({results[n].scan.get(fd, "?") for fd in rest}))
                   for n in names)])
    rows.append(["alice's fd / mallory's fd",
                 *(f"{results[n].alice_fd} / {results[n].mallory_fd}" for n in names)])
    say.columns(["", *names], rows)

    say.section("what this shows")
    t = results["transparent"]
    say.say("Every program is given its root directory as an open fd, its preopen, from "
            "fd 3 on; reading a directory answers EBADF, so fd 3 is EBADF everywhere.")
    say.say(f"Transparent: Alice's fd {t.alice_fd} is slot {t.alice_fd - 2} of the "
            f"implementation's table, and so is Mallory's fd {t.alice_fd}: there is only one "
            "table. Mallory needed no bug, no trap and no privilege, only to count. Her own "
            f"preopen and file took the next free slots, fds {t.mallory_fd - 1} and "
            f"{t.mallory_fd}, and every empty slot answered EBADF: the implementation looked "
            "the number up in its table and found nothing there.")
    say.claim("transparent: Mallory reads Alice's secret through Alice's own fd number",
              t.exit_code == 0 and t.scan.get(t.alice_fd) == "ALICE'S SECRET")
    say.say("Private types: Mallory's numbers name entries of her own fd table, and her "
            "table holds only her preopen and her own file. Every other number answers "
            "EBADF, the answer a POSIX process gets for an fd it never opened.")
    for name in ("component-model", "proposal-2021", "native"):
        got = results[name]
        others = {fd: what for fd, what in got.scan.items() if fd != got.mallory_fd}
        say.claim(f"{name}: Mallory reads her own file and nothing else; every other fd is "
                  "EBADF",
                  got.exit_code == 0 and got.scan.get(got.mallory_fd) == "her own file"
                  and len(got.scan) == len(SCANNED)
                  and set(others.values()) == {"EBADF"})
    native = results["native"].lines
    say.say("The virtual implementation is an unprivileged library instance, yet with private "
            "types Mallory cannot tell it from the host's own WASI: fdscan prints the very "
            "same lines.")
    say.claim("component-model and proposal-2021 give Mallory exactly what native gives",
              results["component-model"].lines == native
              and results["proposal-2021"].lines == native)
    components(say)
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
