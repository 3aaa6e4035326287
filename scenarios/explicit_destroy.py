"""Destroying a resource while another instance still holds it: null, impossible, or someone else's.

The question asked in the 2021 notes: "What happens if you destroy a resource and another
module still has a copy". A file library defines the private type 'file'; its
destructor closes the file. Alice opens a log and gives it to Bob, then tries to end it
herself; Bob goes on using his handle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import (
    FileLibrary,
    Peer,
    side_by_side,
    tell_under_each,
    trapped,
)
from virtwasi.world import Semantics, Trap, World

ORDER = [Semantics.TRANSPARENT, Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
RULES = {
    Semantics.TRANSPARENT: "Handles are bare integers indexing the library's own table; "
    "'close' frees the slot, and the next open may reuse it.",
    Semantics.COMPONENT_MODEL: "Giving a handle moves it (own); lending it for a call is a "
    "borrow. There is no operation to destroy a resource someone else holds.",
    Semantics.PROPOSAL_2021: "Handles are shared copies of one counted resource, and any "
    "holder may destroy it explicitly: the destructor runs at once.",
}


class CallbackPeer(Peer):
    """A client; the scenario acts through its context. ``inspect`` uses a lent file and
    calls Alice back meanwhile (``progress``), noting what that came to (``callback``)."""

    callback = ""

    def inspect(self, h: int) -> None:
        self.callback = attempt(lambda: self.ctx.imports["alice"].progress())
        self.ctx.resource_drop(self.file, h)  # a borrow must be dropped before returning


def attempt(fn: Callable[[], Any]) -> str:
    """What an operation came to: its result, or the trap that refused it."""
    try:
        result = fn()
    except Trap as trap:
        return trapped(trap)
    return "done" if result is None else repr(result)


@dataclass
class Outcome:
    can_end: str = ""  # whether alice can end the file she gave bob, and how
    alice_ends_it: str = ""
    bob_handle: str = ""
    bob_read: str = ""
    detected: str = ""
    closed: list[str] = field(default_factory=list)
    entered_by_bad_read: int = 0
    double: str = ""
    lent_drop: str = ""
    callback: str = ""
    bob_wrote_into: str = ""


def story(semantics: Semantics, say: Narration) -> Outcome:
    out = Outcome()
    world = World(semantics)
    lib = FileLibrary()
    files = world.instantiate("files", lib)
    alice, bob, carol = CallbackPeer(), CallbackPeer(), CallbackPeer()
    alice_inst = world.instantiate("alice", alice, {"files": files})
    bob_inst = world.instantiate("bob", bob, {"files": files, "alice": alice_inst})
    world.instantiate("carol", carol, {"files": files})
    file = alice.file
    a_files, b_files = alice.ctx.imports["files"], bob.ctx.imports["files"]

    h = a_files.open("/shared/log", "started;")
    say.step("alice", "files.open('/shared/log')", f"handle {h}")
    alice.ctx.connect(bob_inst).take(h)
    b = bob.kept[0]
    say.step("alice", f"bob.take({h})", f"bob holds {b}"
             + ("; alice none (moved)" if alice.ctx.handle_count == 0
                and semantics is Semantics.COMPONENT_MODEL else ", a copy"))

    if semantics is Semantics.PROPOSAL_2021:
        out.can_end = "yes, destroy"
        out.alice_ends_it = attempt(lambda: alice.ctx.resource_destroy(file, h))
        say.step("alice", f"resource.destroy({h})", f"{out.alice_ends_it}: closed {lib.closed[0]}")
        out.bob_handle = "null" if bob_inst.held(b).alive is False else "live"
        say.step("bob", f"(his handle {b})", f"still in his table, now {out.bob_handle}")
        before = lib.entered
        out.bob_read = attempt(lambda: b_files.read(b))
        out.entered_by_bad_read = lib.entered - before
        say.step("bob", f"files.read({b})", out.bob_read)
        say.say("The membrane passed Bob's null handle along as a copy; the library's read "
                "began, asked for the representation and found it gone. So the trap happens "
                "in the callee, as the notes expected.")
        out.double = attempt(lambda: bob.ctx.resource_destroy(file, b))
        say.step("bob", f"resource.destroy({b}) (a double close)", out.double)
        say.step("bob", f"drops handle {b}", attempt(lambda: bob.ctx.resource_drop(file, b))
                 + f"; files closed in all: {len(lib.closed)}")
        out.detected = "the callee, at use"
    elif semantics is Semantics.COMPONENT_MODEL:
        out.can_end = "cannot"
        # Alice's own code tries, inside a call into her, and catches each trap: none
        # escapes her, so she carries on (a trap that escapes an instance locks it out).
        with world.entering(alice_inst):
            out.alice_ends_it = attempt(lambda: alice.ctx.resource_destroy(file, h))
            say.step("alice", f"resource.destroy({h})", out.alice_ends_it + " (caught)")
            out.alice_ends_it += "; " + attempt(lambda: alice.ctx.resource_drop(file, h))
            say.step("alice", f"drop her old index {h}",
                     out.alice_ends_it.split("; ")[1] + " (caught)")
        out.bob_handle = "his own, intact"
        out.bob_read = attempt(lambda: b_files.read(b))
        say.step("bob", f"files.read({b})", out.bob_read)
        say.say("The only other way to hold a file is to be lent it. Alice lends Bob a "
                "second file; mid-call he calls her back, so that she can try to drop it.")
        t = a_files.open("/shared/tmp", "")
        say.step("alice", "files.open('/shared/tmp')", f"handle {t}")
        say.step("alice", f"bob.inspect({t})", "lent to bob for the call")

        def drop_lent() -> None:
            out.lent_drop = attempt(lambda: alice.ctx.resource_drop(file, t))
            say.step("alice", f"  progress: drops handle {t}", out.lent_drop)

        alice.on_progress = drop_lent
        alice.ctx.connect(bob_inst).inspect(t)
        out.callback = bob.callback
        if not out.lent_drop:  # she never ran
            say.step("bob", "  inspect: calls alice.progress()", out.callback + " (caught)")
        alice.ctx.resource_drop(file, t)
        say.step("alice", f"drops {t} after the call", f"closed {lib.closed[-1]}")
        say.step("bob", f"drops his handle {b}", attempt(lambda: bob.ctx.resource_drop(file, b))
                 + f": closed {lib.closed[-1]}")
        out.detected = "the world, at alice"
    else:
        out.can_end = "yes, close"
        out.alice_ends_it = attempt(lambda: alice.ctx.resource_drop(file, h))
        say.step("alice", f"closes {h}", f"{out.alice_ends_it}: closed {lib.closed[0]}")
        say.step("bob", f"files.read({b})",
                 attempt(lambda: b_files.read(b)).split(" in ")[0] + ": slot empty")
        c = carol.ctx.imports["files"].open("/home/carol/diary", "dear diary;")
        say.step("carol", "files.open('/home/carol/diary')", f"handle {c}: the slot is reused")
        out.bob_read = attempt(lambda: b_files.read(b))
        out.bob_handle = "reused: carol's file"
        say.step("bob", f"files.read({b})", f"{out.bob_read}: carol's diary")
        b_files.write(b, "bob was here;")
        out.bob_wrote_into = carol.ctx.imports["files"].read(c)
        say.step("bob", f"files.write({b}, 'bob was here;')", "no error")
        say.step("carol", f"files.read({c})", repr(out.bob_wrote_into))
        out.detected = "no one"
    out.closed = list(lib.closed)
    world.close()
    return out


def main() -> int:
    say = Narration("explicit-destroy: ending a resource that another instance still holds")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results = tell_under_each(say, ORDER, RULES, story)
    t, cm, p = (results[s] for s in ORDER)
    side_by_side(say, "", results, {
        "alice ends bob's file": lambda o: o.can_end,
        "bob's handle after": lambda o: o.bob_handle,
        "bob reads it": lambda o: o.bob_read,
        "who notices": lambda o: o.detected,
    })

    say.section("what this shows")
    say.say("The 2021 answer: the other handle becomes null and the mistake surfaces as a "
            "trap in the callee, the library, when it reads the representation. Bob's call "
            "itself was accepted.")
    say.claim("proposal-2021: alice's destroy closed the log at once, though bob held a copy",
              p.alice_ends_it == "done" and p.closed == ["/shared/log"])
    say.claim("proposal-2021: bob's read traps null-handle inside 'files', after it began",
              p.bob_read == "trap null-handle in 'files'" and p.entered_by_bad_read == 1)
    say.claim("proposal-2021: a second destroy traps and the destructor ran exactly once",
              p.double.startswith("trap null-handle") and p.closed == ["/shared/log"])
    say.say("The component model answers with unique ownership instead: a handle Alice gave "
            "away is no longer hers to end, and while one is lent she cannot even run: she "
            "is on the call stack, so Bob's call back into her traps (reentrance) before her "
            "code runs, and she cannot drop it before the call returns. Bob never holds a "
            "dead handle: these are the notes' unique handles, where giving one says 'I no "
            "longer have it'.")
    say.claim("component-model: alice cannot destroy or drop what she gave bob",
              cm.alice_ends_it == "trap unsupported in 'alice'; trap invalid-handle in 'alice'"
              and cm.bob_read == "'started;'")
    say.claim("component-model: alice cannot run to drop a lent file; bob's log closes at his "
              "drop",
              cm.callback == "trap reentrance in 'bob'" and cm.lent_drop == ""
              and cm.closed == ["/shared/tmp", "/shared/log"])
    say.say("With bare integers the stale number is reused for the next open, so Bob silently "
            "reads and writes Carol's diary: undefined behaviour, noticed by no one.")
    say.claim("transparent: bob's stale integer reaches carol's diary, with no error",
              t.bob_read == "'dear diary;'" and t.bob_wrote_into == "dear diary;bob was here;")
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
