"""Two clients share one file library: a forged handle, and a client torn down holding files.

The library instance defines a private resource type, 'file', whose destructor flushes the
file's buffered writes to storage and closes it. Alice opens a secret file, writes to it and
never closes it; Mallory, another client of the same library, tries every handle number to
read it. Then Alice is torn down. The same story runs under the three semantics a world can
have: transparent types (handles are bare integers), the component model, and the 2021
proposal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from virtwasi.narrate import Narration
from virtwasi.world import (
    Context,
    Func,
    ResourceType,
    Semantics,
    Trap,
    World,
    borrow,
    own,
    shared,
    value,
)

GUESSES = range(1, 5)


@dataclass
class Storage:
    """What has reached the backend: only flushed bytes count."""

    files: dict[str, str] = field(default_factory=dict)
    open_files: int = 0


def file_library(storage: Storage) -> Any:
    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        def flush_and_close(rep: dict[str, str]) -> None:
            storage.files[rep["path"]] = rep["buffer"]
            storage.open_files -= 1

        file = ctx.resource_type("file", destructor=flush_and_close)
        # The handle types each semantics uses for "yours now" and "use it for this call".
        if ctx.semantics is Semantics.PROPOSAL_2021:
            given, lent = shared(file), shared(file)
        else:
            given, lent = own(file), borrow(file)

        def rep_of(h: Any) -> dict[str, str]:
            if isinstance(h, dict):  # a component-model borrow arrives as the rep itself
                return h
            rep: dict[str, str] = ctx.resource_rep(file, h)
            return rep

        def open_(path: str) -> int:
            storage.open_files += 1
            return ctx.resource_new(file, {"path": path, "buffer": ""})

        def write(h: Any, text: str) -> None:
            rep_of(h)["buffer"] += text

        def read(h: Any) -> str:
            return rep_of(h)["buffer"]

        return {
            "file": file,
            "open": ctx.func(open_, [value], [given], name="open"),
            "write": ctx.func(write, [lent, value], []),
            "read": ctx.func(read, [lent], [value]),
        }

    return definition


class Client:
    """A client instance; the scenario acts through its context, as its code would."""

    def __init__(self) -> None:
        self.ctx: Context

    def __call__(self, ctx: Context) -> dict[str, Func | ResourceType]:
        self.ctx = ctx
        return {}


@dataclass
class Outcome:
    guesses: list[str] = field(default_factory=list)
    stolen: str | None = None
    open_after_teardown: int = 0
    flushed: str | None = None


def story(semantics: Semantics, say: Narration) -> Outcome:
    outcome = Outcome()
    storage = Storage()
    world = World(semantics)
    files = world.instantiate("files", file_library(storage))
    alice, mallory = Client(), Client()
    alice_inst = world.instantiate("alice", alice, {"files": files})
    world.instantiate("mallory", mallory, {"files": files})

    lib = alice.ctx.imports["files"]
    secret = lib.open("/home/alice/secret")
    say.step("alice", "files.open('/home/alice/secret')", f"handle {secret}")
    lib.write(secret, "hunter2")
    say.step("alice", f"files.write({secret}, 'hunter2')", "buffered, not yet flushed")
    notes = lib.open("/home/alice/notes")
    lib.write(notes, "buy milk")
    say.step("alice", "files.open + write '/home/alice/notes'", f"handle {notes}")

    for guess in GUESSES:
        try:
            text = mallory.ctx.imports["files"].read(guess)
            outcome.guesses.append(f"{guess}: read {text!r}")
            if text == "hunter2":
                outcome.stolen = text
        except Trap as trap:
            outcome.guesses.append(f"{guess}: trap {trap.reason.value}")
        say.step("mallory", f"files.read({guess})", outcome.guesses[-1].split(": ", 1)[1])

    alice_inst.destroy()
    say.step("world", "destroy alice (she never closed anything)", "torn down")
    outcome.open_after_teardown = storage.open_files
    outcome.flushed = storage.files.get("/home/alice/secret")
    say.step("storage", "files still open / secret on disk",
             f"{storage.open_files} / {outcome.flushed!r}")
    world.close()
    return outcome


def main() -> int:
    say = Narration("two-clients: forging a handle, and a client that dies holding files")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results: dict[Semantics, Outcome] = {}
    order = [Semantics.TRANSPARENT, Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
    for semantics in order:
        say.section(f"{semantics.value}")
        results[semantics] = story(semantics, say)

    say.section("side by side")
    say.columns(
        ["question", *(s.value for s in order)],
        [
            ["Mallory reads Alice's secret?",
             *(f"yes: {results[s].stolen!r}" if results[s].stolen else "no" for s in order)],
            ["files left open after teardown",
             *(str(results[s].open_after_teardown) for s in order)],
            ["secret flushed to storage", *(repr(results[s].flushed) for s in order)],
        ],
    )

    say.section("what this shows")
    transparent = results[Semantics.TRANSPARENT]
    say.say("With transparent types a handle is a bare integer that indexes the library's own "
            "table, shared by every client: Mallory only has to count. And nothing tells the "
            "library that Alice is gone, so her files stay open and her buffered write never "
            "reaches storage.")
    say.claim("transparent: Mallory forges Alice's handle and reads the secret",
              transparent.stolen == "hunter2")
    say.claim("transparent: Alice's two files leak after her teardown",
              transparent.open_after_teardown == 2 and transparent.flushed is None)
    say.say("With private resource types each client holds handles in its own table: Mallory's "
            "numbers name nothing in hers, so every guess traps at the membrane. Teardown drops "
            "every handle Alice held, and the destructor (which runs inside the library) "
            "flushes and closes each file, exactly as an OS closes a dead process's files.")
    for semantics in (Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021):
        got = results[semantics]
        say.claim(f"{semantics.value}: every guess by Mallory traps, nothing is read",
                  got.stolen is None
                  and all("trap invalid-handle" in g for g in got.guesses))
        say.claim(f"{semantics.value}: teardown closes both files and flushes the secret",
                  got.open_after_teardown == 0 and got.flushed == "hunter2")
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
