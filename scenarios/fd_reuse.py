"""Use after close and double close: a stale fd number that now names someone else's file.

The classic fd-reuse hazard, with two unmodified wasm programs (holder.wasm, a C program
that keeps files open between calls, run once as Alice and once as Bob). Alice writes a log
line and closes her file, but keeps the old fd number in a variable, as buggy programs do.
Bob then opens his account file. Alice makes both classic mistakes with her stale number:
she writes another line to it (use after close) and closes it again (double close). Bob
then writes his next line. The same programs run on the virtual implementation under
transparent types, the component model and the 2021 proposal, and on the native one.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from virtwasi.client import Client
from virtwasi.demo.narrate import Narration
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.wasi.abi import Errno
from virtwasi.wasi.fdtable import Opened
from virtwasi.wasi.transparent import TransparentPreview1
from virtwasi.world import Semantics, Trap

HOLDER = Path(__file__).resolve().parent / "programs" / "holder.wasm"
ORDER = ["transparent", "component-model", "proposal-2021", "native"]
SEMANTICS = {
    "transparent": Semantics.TRANSPARENT,
    "component-model": Semantics.COMPONENT_MODEL,
    "proposal-2021": Semantics.PROPOSAL_2021,
    "native": Semantics.COMPONENT_MODEL,  # the native implementation keeps its own tables
}
RULES = {
    "transparent": "An fd is a bare index into the implementation's one table, shared by "
    "every client, and a freed slot is the first one handed out again, to anyone. Each "
    "program's root directory (its preopen) takes a slot too: Alice's is fd 3, Bob's fd 4.",
    "component-model": "Each client's fds name handles in its own table. Closing an fd "
    "removes it from Alice's table and moves her handle into the implementation, which "
    "drops it.",
    "proposal-2021": "Each client's fds name handles in its own table. Closing an fd "
    "removes it from Alice's table and destroys the file; her handle, now null, is dropped.",
    "native": "The host's own WASI: each client has its own fd table of real host files.",
}
LINE_1 = b"alice: started\n"
LATE = b"alice: late line\n"
BOB_1 = b"bob: balance 100\n"
BOB_2 = b"bob: balance 90\n"


def ending(stored: bytes) -> str:
    return {BOB_1 + BOB_2: "bob's 2 lines", LATE: "alice's, over bob's"}.get(
        stored, repr(stored.decode()))


def answer(result: int) -> str:
    """What a holder export returned: a count, or minus an errno."""
    return f"E{Errno(-result).name}" if result < 0 else str(result)


def count(result: int) -> str:
    return answer(result) + (" B" if result >= 0 else "")


class Holder:
    """A holder.wasm client, driven export by export as the story needs."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.buffer: int = client.call("text")

    def _text(self, data: bytes) -> None:
        self.client.write_memory(self.buffer, data)

    def create(self, path: str) -> int:
        self._text(path.encode() + b"\0")
        fd: int = self.client.call("create")
        return fd

    def put(self, fd: int, data: bytes) -> int:
        self._text(data)
        done: int = self.client.call("put", fd, len(data))
        return done

    def get(self, fd: int) -> tuple[int, bytes]:
        got: int = self.client.call("get", fd)
        return got, self.client.read_memory(self.buffer, max(got, 0))

    def shut(self, fd: int) -> int:
        done: int = self.client.call("shut", fd)
        return done


@dataclass
class Outcome:
    alice_fd: int = 0
    bob_fd: int = 0
    late_write: int = 0
    bob_sees: bytes = b""
    second_close: int = 0
    bob_next_write: int = 0
    stored: bytes = b""  # /bob.txt in the backend once everything is closed
    old_handle: str = ""  # what alice's old handle did when passed anyway


def story(name: str, say: Narration) -> Outcome:
    out = Outcome()
    native = name == "native"
    with tempfile.TemporaryDirectory(prefix="virtwasi-fd-reuse-") as folder:
        tree = MemoryStorage()
        mounts = {"/": folder if native else tree}
        with WasiWorld(mounts, semantics=SEMANTICS[name],
                       impl="native" if native else "virtual") as host:
            alice = Holder(host.client(HOLDER, name="alice"))
            bob = Holder(host.client(HOLDER, name="bob"))
            out.alice_fd = fd = alice.create("/alice.log")
            say.step("alice", "open('/alice.log')", f"fd {fd}")
            say.step("alice", f"write(fd {fd}, 'alice: started')", answer(alice.put(fd, LINE_1)))
            # Her fd's handle in her own table (the transparent adapter keeps none).
            adapter = alice.client.adapter
            entry = adapter.table.slots[fd] if fd < len(adapter.table.slots) else None
            old_handle = entry.handle if isinstance(entry, Opened) and not isinstance(
                adapter, TransparentPreview1) else None
            say.step("alice", f"close(fd {fd}), keeping the number", answer(alice.shut(fd)))
            out.bob_fd = bob.create("/bob.txt")
            say.step("bob", "open('/bob.txt')", f"fd {out.bob_fd}" + (
                " (the number Alice freed)" if out.bob_fd == fd and name == "transparent"
                else " (in his own table)" if out.bob_fd == fd else ""))
            say.step("bob", f"write(fd {out.bob_fd}, 'bob: balance 100')",
                     answer(bob.put(out.bob_fd, BOB_1)))
            out.late_write = alice.put(fd, LATE)
            say.step("alice", f"write(fd {fd}, 'alice: late line'): stale",
                     answer(out.late_write))
            got, out.bob_sees = bob.get(out.bob_fd)
            say.step("bob", f"read(fd {out.bob_fd}) from the start",
                     repr(out.bob_sees.decode()) if got >= 0 else answer(got))
            out.second_close = alice.shut(fd)
            say.step("alice", f"close(fd {fd}) again: double close", answer(out.second_close))
            out.bob_next_write = bob.put(out.bob_fd, BOB_2)
            say.step("bob", f"write(fd {out.bob_fd}, 'bob: balance 90')",
                     answer(out.bob_next_write))
            if old_handle is not None:
                # Below the fd table: what if Alice's adapter had kept her old handle?
                try:
                    adapter.wasi.write(old_handle, memoryview(LATE), 0)
                    out.old_handle = "wrote"
                except Trap as trap:
                    out.old_handle = f"trap {trap.reason.value} in {trap.instance!r}"
                say.step("alice", f"(a buggy adapter) wasi.write(handle {old_handle})",
                         out.old_handle)
        # The world is closed: every file is closed and flushed. What did the backend keep?
        out.stored = (Path(folder) / "bob.txt").read_bytes() if native else bytes(
            tree.fs.cat("/bob.txt"))
        say.step("storage", "/bob.txt once everything is closed", repr(out.stored.decode()))
    return out


def main() -> int:
    say = Narration("fd-reuse: use after close and double close, with real wasm programs")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results: dict[str, Outcome] = {}
    for name in ORDER:
        say.section(name if name == "native" else f"{name} (virtual implementation)")
        say.say(RULES[name])
        results[name] = story(name, say)

    say.section("side by side")

    r = [results[n] for n in ORDER]
    say.columns(["", *ORDER], [
        ["alice's fd / bob's fd", *(f"{o.alice_fd} / {o.bob_fd}" for o in r)],
        ["alice's stale write", *(count(o.late_write) for o in r)],
        ["alice's second close", *(answer(o.second_close) if o.second_close else "ok"
                                   for o in r)],
        ["bob's next write", *(count(o.bob_next_write) for o in r)],
        ["bob.txt at the end", *(ending(o.stored) for o in r)],
    ])

    say.section("what this shows")
    t = results["transparent"]
    say.say("Transparent: Alice's close freed slot "
            f"{t.alice_fd - 2} of the implementation's table, and Bob's open took it: fd "
            f"{t.bob_fd}, the very number Alice still held. Her stale write succeeded and "
            "landed in Bob's account file, over his first line (positions are each client's "
            "own, and hers for that number starts again at 0); her double close succeeded too "
            "and closed Bob's file under him, so his next write failed. Nothing anywhere "
            "reported her mistake.")
    say.claim("transparent: Bob's open reuses the number Alice closed",
              t.bob_fd == t.alice_fd)
    say.claim("transparent: Alice's stale write lands in Bob's file and her double close "
              "closes it (Bob's next write answers EBADF)",
              t.late_write == len(LATE) and t.second_close == 0
              and t.stored == LATE and t.bob_next_write == -Errno.BADF)
    say.say("Private types and native: Alice's fds live in her own table. Her closed number "
            "names nothing there, whatever Bob opens in his, so both mistakes answer EBADF, "
            "as they would in a POSIX process, and Bob's file is untouched.")
    for name in ("component-model", "proposal-2021", "native"):
        got = results[name]
        say.claim(f"{name}: the stale write and the double close answer EBADF; Bob's file "
                  "is intact",
                  got.late_write == -Errno.BADF and got.second_close == -Errno.BADF
                  and got.bob_sees == BOB_1 and got.bob_next_write == len(BOB_2)
                  and got.stored == BOB_1 + BOB_2)
    say.say("How this maps onto the hierarchy scenario (undefined < trap < prevented), "
            "which makes the same two mistakes one level down, with world handles instead of "
            "fds. Transparent is undefined at both levels: the stale number is just a slot of "
            "the implementation's table, and whoever holds that slot now gets the write and "
            "the close. A wasm program never holds a world handle, only an fd; its preview 1 "
            "adapter keeps its fd table and forgets the fd at close, so under private types "
            "the stale number is caught in Alice's own table and answered EBADF, as POSIX "
            "does, before any handle is touched.")
    say.say("The world's rules stand behind that table. In hierarchy, under the component "
            "model, close moved the handle away and the stale use was refused in the "
            "caller (prevented); under the 2021 proposal the handle stayed in app's table, "
            "null, and the use trapped inside the library "
            "(trap). Here the adapter also drops its null handle after a 2021 close, so in "
            "both semantics Alice's old handle index is simply empty: even passed by a buggy "
            "adapter, it is refused in Alice, and never reaches the implementation or Bob. "
            "The native implementation stands behind the same adapter and the same world "
            "rules, so the same holds there.")
    for name in ("component-model", "proposal-2021", "native"):
        say.claim(f"{name}: Alice's old handle, passed anyway, traps in 'alice'",
                  results[name].old_handle == "trap invalid-handle in 'alice'")
    cm, p21 = results["component-model"], results["proposal-2021"]
    say.claim("component-model and proposal-2021 answer every step exactly as native does",
              all((getattr(r, k) == getattr(results["native"], k)) for r in (cm, p21)
                  for k in ("alice_fd", "bob_fd", "late_write", "bob_sees", "second_close",
                            "bob_next_write", "stored")))
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
