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

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import FileLibrary, ScriptedClient, side_by_side, tell_under_each
from virtwasi.world import Semantics, Trap, World

GUESSES = range(1, 5)


@dataclass
class Outcome:
    guesses: list[str] = field(default_factory=list)
    stolen: str | None = None
    open_after_teardown: int = 0
    flushed: str | None = None


def story(semantics: Semantics, say: Narration) -> Outcome:
    outcome = Outcome()
    world = World(semantics)
    lib = FileLibrary()
    files = world.instantiate("files", lib)
    alice, mallory = ScriptedClient(), ScriptedClient()
    alice_inst = world.instantiate("alice", alice, {"files": files})
    world.instantiate("mallory", mallory, {"files": files})

    a_files = alice.ctx.imports["files"]
    secret = a_files.open("/home/alice/secret", "")
    say.step("alice", "files.open('/home/alice/secret')", f"handle {secret}")
    a_files.write(secret, "hunter2")
    say.step("alice", f"files.write({secret}, 'hunter2')", "buffered, not yet flushed")
    notes = a_files.open("/home/alice/notes", "")
    a_files.write(notes, "buy milk")
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
    outcome.open_after_teardown = len(lib.open_files)
    outcome.flushed = lib.stored.get("/home/alice/secret")
    say.step("storage", "files still open / secret on disk",
             f"{outcome.open_after_teardown} / {outcome.flushed!r}")
    world.close()
    return outcome


def main() -> int:
    say = Narration("two-clients: forging a handle, and a client that dies holding files")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    order = [Semantics.TRANSPARENT, Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
    results = tell_under_each(say, order, {}, story)
    side_by_side(say, "question", results, {
        "Mallory reads Alice's secret?": lambda o: f"yes: {o.stolen!r}" if o.stolen else "no",
        "files left open after teardown": lambda o: str(o.open_after_teardown),
        "secret flushed to storage": lambda o: repr(o.flushed),
    })

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
            "numbers name nothing in hers, so a guess traps at the membrane. Under the 2021 "
            "proposal she may go on guessing, and every guess traps the same way. Under the "
            "component model a trap leaves the instance it escaped unusable: after her first "
            "trap Mallory is locked out for good, and every later guess traps before it "
            "reaches the library. Teardown drops every handle Alice held, and the destructor "
            "(which runs inside the library) flushes and closes each file, exactly as an OS "
            "closes a dead process's files.")
    cm, p2021 = results[Semantics.COMPONENT_MODEL], results[Semantics.PROPOSAL_2021]
    say.claim("component-model: Mallory's first guess traps and locks her out; nothing is read",
              cm.stolen is None and cm.guesses[0] == "1: trap invalid-handle"
              and all("trap instance-trapped" in g for g in cm.guesses[1:]))
    say.claim("proposal-2021: every guess by Mallory traps, nothing is read",
              p2021.stolen is None and all("trap invalid-handle" in g for g in p2021.guesses))
    for semantics in (Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021):
        got = results[semantics]
        say.claim(f"{semantics.value}: teardown closes both files and flushes the secret",
                  got.open_after_teardown == 0 and got.flushed == "hunter2")
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
