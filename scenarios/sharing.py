"""Sharing a file between instances: moved (own), copied and counted (shared), or lent (borrow).

A file library defines the private type 'file'; its destructor closes the file. Alice opens
a report and gives it to Bob, then to Carol, and everyone lets go of it in turn. Then Alice
lends Bob a second file for one call; in the middle of it Bob calls back into Alice, and she
tries to close the file he is still using, if the world lets her run at all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import FileLibrary, Peer, side_by_side, tell_under_each
from virtwasi.world import Instance, Semantics, Trap, World

ORDER = [Semantics.TRANSPARENT, Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
RULES = {
    Semantics.TRANSPARENT: "A handle is a bare integer indexing the library's own table: "
    "passing it copies the number, and nothing counts the copies or tracks a lend.",
    Semantics.COMPONENT_MODEL: "take() receives an own handle: passing it moves it into the "
    "receiver's table. inspect() receives a borrow: lent to bob for that one call. No call "
    "may enter an instance that is running one, unless from inside it (its own child).",
    Semantics.PROPOSAL_2021: "Every parameter is a shared handle: passing it copies it into "
    "the receiver's table, and the world counts the copies of each resource.",
}


class NamedPeer(Peer):
    """A client instance. The scenario acts through its context, as the client's code would;
    other clients can give it a file, lend it one or call it back in the middle of a call."""

    def __init__(self, name: str, say: Narration) -> None:
        super().__init__()
        self.name = name
        self.say = say
        self.last_read = "(never: the call unwound)"
        self.lent = 0
        self.callback = ""  # what calling alice back came to

    def inspect(self, h: int) -> None:
        files = self.ctx.imports["files"]
        self.lent = h
        self.say.step(self.name, f"  inspect: read its handle {h}", repr(files.read(h)))
        self.say.step(self.name, "  inspect: calls alice.progress()", "(callback)")
        try:
            self.ctx.imports["alice"].progress()
        except Trap as trap:
            self.callback = f"trap {trap.reason.value}"
            self.say.step(self.name, "  inspect: alice.progress()", self.callback)
            raise
        self.callback = "ran"
        try:
            self.last_read = repr(files.read(h))
        except Trap as trap:
            self.last_read = f"trap {trap.reason.value}"
            self.say.step(self.name, "  inspect: reads it again", self.last_read)
            raise
        self.say.step(self.name, "  inspect: reads it again", self.last_read)
        if self.ctx.semantics is Semantics.COMPONENT_MODEL:
            self.ctx.resource_drop(self.file, h)  # a borrow must be dropped before returning


def refs(inst: Instance, h: int) -> int:
    """The world's reference count of the resource behind ``inst``'s handle ``h``."""
    return inst.held(h).refs


@dataclass
class Outcome:
    give: str = ""
    give_again: str = ""
    counts: list[int] = field(default_factory=list)  # proposal-2021: the count as it moves
    closed_when: str = ""
    holders_at_close: int = 0
    lender_close: str = ""
    callback: str = ""
    bob_read: str = ""
    closes: list[str] = field(default_factory=list)


def story(semantics: Semantics, say: Narration) -> Outcome:
    out = Outcome()
    world = World(semantics)
    lib = FileLibrary()
    files = world.instantiate("files", lib)
    alice, bob, carol = NamedPeer("alice", say), NamedPeer("bob", say), NamedPeer("carol", say)
    alice_inst = world.instantiate("alice", alice, {"files": files})
    bob_inst = world.instantiate("bob", bob, {"files": files, "alice": alice_inst})
    carol_inst = world.instantiate("carol", carol, {"files": files})
    file = alice.file
    counted = semantics is Semantics.PROPOSAL_2021

    def count(holder: Instance, h: int) -> str:
        """Under 2021, the world's reference count, read through any holder's handle."""
        if not counted:
            return ""
        out.counts.append(refs(holder, h))
        return f", count {out.counts[-1]}"

    # Part 1: giving a handle away, twice, then everyone lets go.
    h = alice.ctx.imports["files"].open("/reports/q1", "draft")
    say.step("alice", "files.open('/reports/q1')", f"handle {h}{count(alice_inst, h)}")
    holders: list[tuple[NamedPeer, Instance, int]] = [(alice, alice_inst, h)]
    alice.ctx.connect(bob_inst).take(h)
    holders.append((bob, bob_inst, bob.kept[0]))
    if semantics is Semantics.COMPONENT_MODEL and alice.ctx.handle_count == 0:
        out.give = "moved: alice's index died"
        holders.pop(0)
    else:
        out.give = "copied" + (f", count {refs(bob_inst, bob.kept[0])}" if counted else "")
    say.step("alice", f"bob.take({h})",
             f"bob holds {bob.kept[0]}; " + ("alice none" if holders[0][0] is bob
                                             else "a copy") + count(bob_inst, bob.kept[0]))
    # Alice's own code tries, inside a call into her, and catches the trap: it does not
    # escape her, so she carries on (a trap that escapes an instance locks it out).
    with world.entering(alice_inst):
        try:
            alice.ctx.connect(carol_inst).take(h)
            holders.append((carol, carol_inst, carol.kept[0]))
            out.give_again = "copied" + (f", count {refs(carol_inst, carol.kept[0])}"
                                         if counted else "")
            say.step("alice", f"carol.take({h})",
                     f"carol holds {carol.kept[0]}{count(carol_inst, carol.kept[0])}")
        except Trap as trap:
            out.give_again = f"trap {trap.reason.value}"
            say.step("alice", f"carol.take({h})", f"{out.give_again} (moved, caught)")
    while holders:
        who, _, k = holders.pop(0)
        who.ctx.resource_drop(file, k)
        if lib.closed:
            out.closed_when = f"at {who.name}'s drop"
            out.holders_at_close = len(holders)
            names = ", ".join(w.name for w, _, _ in holders)
            left = f"; {names} hold it" if holders else ""
            zero = "count 0: " if counted else ""
            say.step(who.name, f"drops its handle {k}", f"{zero}closed {lib.closed[-1]}{left}")
            break
        _, next_inst, next_h = holders[0]
        say.step(who.name, f"drops its handle {k}", "still open" + count(next_inst, next_h))
    if counted and lib.closed:
        out.counts.append(0)

    # Part 2: lending a handle for one call, and the lender trying to close it meanwhile.
    h2 = alice.ctx.imports["files"].open("/reports/q2", "numbers")
    say.step("alice", "files.open('/reports/q2')", f"handle {h2}")

    def close_lent() -> None:
        before = len(lib.closed)
        try:
            alice.ctx.resource_drop(file, h2)
        except Trap as trap:
            out.lender_close = f"trap {trap.reason.value}"
            say.step("alice", f"  progress: drops her handle {h2}", out.lender_close)
            raise
        out.lender_close = ("closed under bob" if len(lib.closed) > before
                            else "open until the call ends")
        say.step("alice", f"  progress: drops her handle {h2}",
                 f"dropped, count {refs(bob_inst, bob.lent)}" if counted
                 else out.lender_close)

    alice.on_progress = close_lent
    try:
        alice.ctx.connect(bob_inst).inspect(h2)
        say.step("alice", f"bob.inspect({h2}) returns",
                 f"copy released: closed {lib.closed[-1]}")
    except Trap as trap:
        say.step("alice", f"bob.inspect({h2})", f"trap {trap.reason.value}: unwound")
        locked = [inst.name for inst in (bob_inst, alice_inst) if inst.trapped is not None]
        if locked:
            say.step("world", "the trap escaped " + ", then ".join(locked),
                     "locked out for good: " + ", ".join(locked))
    out.callback = bob.callback
    out.bob_read = bob.last_read
    world.close()
    if lib.closed[-1:] == ["/reports/q2"] and "/reports/q2" not in out.closes:
        say.step("world", "close: tears every instance down", "closed /reports/q2")
    out.closes = list(lib.closed)
    return out


def main() -> int:
    say = Narration("sharing: moving, copying and lending a handle between instances")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    say.say("A handle number is an index in its holder's own table, so Bob's number for a "
            "file may differ from Alice's.")
    results = tell_under_each(say, ORDER, RULES, story)
    t, cm, p = (results[s] for s in ORDER)
    side_by_side(say, "question", results, {
        "alice gives q1 to bob": lambda o: o.give,
        "then to carol too": lambda o: o.give_again,
        "q1's destructor ran": lambda o: o.closed_when,
        "alice closes q2 while lent": lambda o: o.lender_close or f"cannot run: {o.callback}",
    })

    say.section("what this shows")
    say.say("An own handle is unique: passing it moves it, so Alice cannot give it twice and "
            "only the one owner decides when the file closes.")
    say.claim("component-model: the move kills alice's index; bob's drop runs the destructor",
              cm.give.startswith("moved") and cm.give_again == "trap invalid-handle"
              and cm.closed_when == "at bob's drop")
    say.say("A 2021 shared handle copies; the world counts the copies and the destructor runs "
            "only when the last one drops.")
    say.claim("proposal-2021: the count goes 1, 2, 3, 2, 1, 0 and the file closes at 0",
              p.counts == [1, 2, 3, 2, 1, 0] and p.closed_when == "at carol's drop")
    say.say("Bare integers copy too, but nothing counts them: the first close ends the file "
            "for everyone who still holds the number.")
    say.claim("transparent: alice's close ran the destructor while bob and carol held it",
              t.closed_when == "at alice's drop" and t.holders_at_close == 2)
    say.say("A borrow is lent for one call, and under the component model the lender cannot "
            "even run while the call is in progress: she is on the call stack, so Bob's call "
            "back into her traps (reentrance) before her code runs. (Were she entered anyway, "
            "as a parent may be by its own child, dropping the lent handle would trap "
            "handle-lent.) The trap escapes Bob and then Alice, which leaves both locked out "
            "for good; her file closes when the world tears her down.")
    say.claim("component-model: bob's callback traps reentrance, so alice never closes the lent "
              "file; it closes at her teardown",
              cm.callback == "trap reentrance" and cm.lender_close == ""
              and cm.closes == ["/reports/q1", "/reports/q2"])
    say.say("Under the 2021 proposal there is no lending: Bob's call gets its own counted "
            "copy, so Alice's drop only lowers the count and the file lives until his call ends.")
    say.claim("proposal-2021: bob's call copy keeps the file open until the call ends",
              p.lender_close == "open until the call ends"
              and p.bob_read == "'numbers'" and p.closes[-1] == "/reports/q2")
    say.claim("transparent: alice's close closes the file under bob mid-call",
              t.lender_close == "closed under bob" and t.bob_read == "trap invalid-handle")
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
