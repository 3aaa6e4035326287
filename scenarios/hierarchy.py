"""Undefined is worst, trap is better, statically preventing is best: one misuse, three outcomes.

From the 2021 notes: "Hierarchy, undefined is worst, trap is better, statically preventing
is best". A client, app, closes its log file through the file library, and then makes the
two classic mistakes with the stale handle: it writes to it (use-after-close) and closes it
again (double close). Meanwhile another client, other, has opened a secret file of its own.
The same mistakes run under each semantics, from worst to best.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import Exported, FileLibrary, ScriptedClient, tell_under_each, trapped
from virtwasi.world import Context, ResourceType, Semantics, Trap, World, given

ORDER = [Semantics.TRANSPARENT, Semantics.PROPOSAL_2021, Semantics.COMPONENT_MODEL]
RULES = {
    Semantics.TRANSPARENT: "close(h) frees slot h of the library's own table; the next "
    "open, by anyone, may reuse it. Nothing checks who passes which integer.",
    Semantics.PROPOSAL_2021: "close(h) receives a shared copy and destroys the resource "
    "explicitly: the file closes and every other handle to it, app's included, goes null.",
    Semantics.COMPONENT_MODEL: "close(h) takes an own handle: calling it moves the handle "
    "into the library, which drops it. The index in app's table is dead from then on.",
}


class ClosingLibrary(FileLibrary):
    """The file library, with ``close(h)``: it takes the file and ends it."""

    def funcs(self, ctx: Context, file: ResourceType) -> Exported:
        def close(h: int) -> None:
            self.entered += 1
            # Under proposal-2021 the explicit destructor of the proposal: other copies go null.
            ctx.end(file, h)

        return {**super().funcs(ctx, file), "close": ctx.func(close, [given(file)], [])}


@dataclass
class Misuse:
    """What one mistaken call came to."""

    result: str
    trapped_in: str | None  # the instance where the trap was raised, if any
    library_ran: bool  # whether any library code ran for the call

    def category(self) -> str:
        if self.trapped_in is None:
            return "undefined"
        return "prevented" if not self.library_ran else "trap"


def misuse(lib: FileLibrary, fn: Callable[[], Any]) -> Misuse:
    before = lib.entered
    try:
        fn()
    except Trap as trap:
        return Misuse(trapped(trap), trap.instance, lib.entered > before)
    return Misuse("no error", None, lib.entered > before)


@dataclass
class Outcome:
    after_close: Misuse | None = None
    double_close: Misuse | None = None
    closed: list[tuple[str, str]] = field(default_factory=list)
    other_reads: list[str] = field(default_factory=list)


def story(semantics: Semantics, say: Narration) -> Outcome:
    out = Outcome()
    world = World(semantics)
    lib = ClosingLibrary()
    files = world.instantiate("files", lib)
    app, other = ScriptedClient(), ScriptedClient()
    app_inst = world.instantiate("app", app, {"files": files})
    world.instantiate("other", other, {"files": files})
    a_files, o_files = app.ctx.imports["files"], other.ctx.imports["files"]

    h = a_files.open("/app/log", "line 1;")
    say.step("app", "files.open('/app/log')", f"handle {h}")
    a_files.close(h)
    if semantics is Semantics.TRANSPARENT:
        left = f"slot {h} is free"
    elif app_inst.handle_count == 0:
        left = f"app's {h} moved away"
    else:
        left = f"app's {h} is null" if not app_inst.held(h).alive else "?"
    say.step("app", f"files.close({h})", f"closed {lib.closed[-1]}; {left}")
    o = o_files.open("/other/secret", "s3cret;")
    say.step("other", "files.open('/other/secret')", f"handle {o}" + (
        " (slot reused)" if semantics is Semantics.TRANSPARENT else " (in its own table)"))

    def other_reads() -> None:
        try:
            out.other_reads.append(repr(o_files.read(o)))
        except Trap as trap:
            out.other_reads.append(f"trap {trap.reason.value}: its file is gone")
        say.step("other", f"files.read({o})", out.other_reads[-1])

    out.after_close = misuse(lib, lambda: a_files.write(h, "line 2;"))
    say.step("app", f"files.write({h}, 'line 2;'): use after close",
             out.after_close.result)
    other_reads()
    out.double_close = misuse(lib, lambda: a_files.close(h))
    closed_now = f": closed {lib.closed[-1]}" if len(lib.closed) > 1 else ""
    say.step("app", f"files.close({h}) again: double close", out.double_close.result + closed_now)
    other_reads()
    out.closed = [(path, lib.stored[path]) for path in lib.closed]
    world.close()
    if semantics is Semantics.COMPONENT_MODEL:
        say.say("The trap is raised in app, by the world, before any library code runs. "
                "In a real component toolchain this mistake never gets that far: close "
                "takes the file by value (in Rust, fn close(self)), so a later write is a "
                "compile error, 'use of moved value'. The membrane's check on app's table "
                "is the runtime stand-in for that static check. (The stand-in has a gap "
                "the compiler does not: had app opened another file, its table could "
                "have reused the dead index.) And a trap leaves the instance it escaped "
                "unusable: after its first mistake app is locked out for good, so its "
                "double close is refused before its table is even looked at.")
    return out


def main() -> int:
    say = Narration("hierarchy: undefined, trap, or prevented: use-after-close and double close")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results = tell_under_each(say, ORDER, RULES, story)
    t, p, cm = (results[s] for s in ORDER)

    def category(o: Outcome) -> str:
        assert o.after_close is not None and o.double_close is not None
        kinds = {o.after_close.category(), o.double_close.category()}
        return kinds.pop() if len(kinds) == 1 else "mixed: " + ", ".join(sorted(kinds))

    say.section("the hierarchy")
    rows = []
    for s in ORDER:
        o = results[s]
        assert o.after_close is not None and o.double_close is not None
        wrote = o.after_close.trapped_in is None and o.other_reads[0] != "'s3cret;'"
        closed = o.double_close.trapped_in is None and o.closed[-1][0] == "/other/secret"
        rows.append([
            s.value,
            "silently wrote to other's file" if wrote else o.after_close.result,
            "silently closed other's file" if closed else o.double_close.result,
            category(o),
        ])
    say.columns(["semantics", "use-after-close", "double close", "category"], rows)

    say.section("what this shows")
    say.say("Undefined: with bare integers the stale handle names whatever reuses its slot. "
            "App's late write landed in other's secret, and its second close closed other's "
            "file, with no error anywhere.")
    say.claim("transparent: the late write corrupts other's file and the double close closes it",
              t.after_close is not None and t.after_close.trapped_in is None
              and t.other_reads[0] == "'s3cret;line 2;'"
              and t.closed[-1] == ("/other/secret", "s3cret;line 2;")
              and t.other_reads[1].startswith("trap"))
    say.say("Trap: under the 2021 proposal app's handle went null; the library accepted the "
            "call, asked for the representation and trapped. Safe, but found late, in the "
            "callee.")
    say.claim("proposal-2021: both mistakes trap null-handle inside 'files'; other is untouched",
              p.after_close == Misuse("trap null-handle in 'files'", "files", True)
              and p.double_close == Misuse("trap null-handle in 'files'", "files", True)
              and p.closed == [("/app/log", "line 1;")] and p.other_reads == ["'s3cret;'"] * 2)
    say.say("Prevented: under the component model the handle moved into close, so the mistaken "
            "calls are refused in app before the library sees them: the first by app's own "
            "table, the second because the first trap locked app out.")
    say.claim("component-model: both mistakes are refused in 'app'; the library never runs",
              cm.after_close == Misuse("trap invalid-handle in 'app'", "app", False)
              and cm.double_close == Misuse("trap instance-trapped in 'app'", "app", False)
              and cm.closed == [("/app/log", "line 1;")]
              and cm.other_reads == ["'s3cret;'"] * 2)
    say.claim("the outcomes rank undefined < trap < prevented",
              [category(results[s]) for s in ORDER] == ["undefined", "trap", "prevented"])
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
