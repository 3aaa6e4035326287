"""Attenuation: a read-only view made by an unprivileged layer, and the "dynamic cast".

A folder holds a shopping list and a to-do list. The same wasm program, fstool.wasm (a small
C file tool), is given that folder twice: once directly, and once through a read-only layer,
an ordinary instance stacked between the program and the WASI implementation. The layer
defines its own private resource type, 'ro-descriptor', whose representation is the
writable descriptor it holds below and never hands out; it passes every read through and
answers every write with EROFS. Then the question from the 2021 notes: "if run() is given a
read-only handle, can anything it calls write?" Instance X is handed a read-only handle and
also imports the writable implementation itself. It presents the handle there, then tries
the numbers of its own handle table, under each of the three semantics.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import Exported, imported_type, tell_under_each
from virtwasi.filesystem import interface
from virtwasi.filesystem.errors import FsError
from virtwasi.layers import read_only_layer
from virtwasi.runtime import WasiWorld
from virtwasi.storage.memfs import MemoryStorage
from virtwasi.storage.tree import Snapshot, copy_tree, snapshot
from virtwasi.world import Context, ResourceType, Semantics, Trap, lent

FSTOOL = Path(__file__).resolve().parent / "programs" / "fstool.wasm"
READS = [("cat", "/notes.txt"), ("ls", "/todo"), ("stat", "/notes.txt")]
WRITES = [
    ("put", "/notes.txt", "buy eggs"),
    ("append", "/todo/monday.txt", "; water the plants"),
    ("put", "/new.txt", "hello"),
    ("mkdir", "/drafts"),
    ("rm", "/todo/monday.txt"),
    ("mv", "/notes.txt", "/old-notes.txt"),
]
EROFS_LINE = "errno 69 (Read-only file system)"
GUESSES = range(1, 6)
ORDER = [Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021, Semantics.TRANSPARENT]
RULES = {
    Semantics.COMPONENT_MODEL: "run() takes a borrow of the layer's 'ro-descriptor': X gets an "
    "index in its own table for the call, and every call checks the type of what it is given.",
    Semantics.PROPOSAL_2021: "run() takes a shared 'ro-descriptor': X gets a copy in its own "
    "table for the call, and every call checks the type of what it is given.",
    Semantics.TRANSPARENT: "A handle is a bare integer indexing its definer's table, and "
    "nothing checks what a call is given.",
}
MKDIR = "implementation.create_directory_at(h, 'cast')"
OPEN = "implementation.open_at(h, write)"


def forged(guess: int) -> str:
    return f"implementation.create_directory_at({guess}, ...), forged"


def shown(command: tuple[str, ...]) -> str:
    """A command as typed, the text to write quoted."""
    if command[0] in ("put", "append"):
        return f"{command[0]} {command[1]} '{command[2]}'"
    return " ".join(command)


def the_folder() -> MemoryStorage:
    tree = MemoryStorage()
    tree.fs.pipe("/notes.txt", b"buy milk")
    tree.fs.pipe("/todo/monday.txt", b"call the plumber")
    return tree


def fingerprint(tree: Snapshot) -> str:
    """A short hash of every path, kind and content: equal fingerprints, equal folders."""
    return hashlib.sha256(repr(sorted(tree.items())).encode()).hexdigest()[:12]


def listing(tree: Snapshot) -> str:
    return ", ".join(f"{path}/" if kind == "directory" else path
                     for path, (kind, _) in sorted(tree.items()))


@dataclass
class Run:
    """What fstool answered, command by command, and what it left behind."""

    answers: list[str] = field(default_factory=list)
    before: str = ""
    after: str = ""
    after_listing: str = ""
    open_below: int = -1  # descriptors still alive in the implementation after teardown


def run_fstool(tree: MemoryStorage, layered: bool, say: Narration) -> Run:
    commands = [*READS, *WRITES]
    args = [word for command in commands for word in command]
    result = Run(before=fingerprint(snapshot(tree)))
    layers = [("read-only", read_only_layer())] if layered else []
    with WasiWorld({"/": tree}, layers=layers) as world:
        client = world.client(str(FSTOOL), args)
        code = client.start()
        lines = client.stdout.decode().splitlines()
        client.close()  # teardown: every handle it still held is dropped
        descriptor = world.implementation.types["descriptor"]
        assert isinstance(descriptor, ResourceType)
        result.open_below = descriptor.live_count
    # fstool prints one line per command: "cmd path: answer".
    result.answers = [line.split(": ", 1)[1] for line in lines]
    for command, answer in zip(commands, result.answers, strict=True):
        say.step("fstool", shown(command), answer)
    say.step("world", "fstool exits, its instance is torn down",
             f"exit {code}, {result.open_below} descriptor(s) left open below")
    after = snapshot(tree)
    result.after, result.after_listing = fingerprint(after), listing(after)
    return result


class X:
    """An instance whose run() is given a read-only descriptor, and which also imports the
    writable implementation. Every attempt it makes is recorded with how it ended."""

    def __init__(self) -> None:
        self.attempts: dict[str, str] = {}
        # Set by the scenario: what X's handle table holds, looked at from outside.
        self.look_at_table: Callable[[], list[str]] = list
        self.table_during_run: list[str] = []

    def __call__(self, ctx: Context) -> Exported:
        writable = ctx.imports["implementation"]
        ro = imported_type(ctx, "read-only", "descriptor")

        def attempt(what: str, action: Callable[[], Any]) -> None:
            try:
                action()
                self.attempts[what] = "it worked"
            except Trap as trap:
                self.attempts[what] = f"trap: {trap.reason.value}"
            except FsError as error:  # got through to the implementation, which refused
                self.attempts[what] = f"error {error.code.wit_name}"

        def run(h: int) -> None:
            attempt(MKDIR, lambda: writable.create_directory_at(h, "cast"))
            flags = interface.READ | interface.WRITE
            attempt(OPEN, lambda: writable.open_at(h, 0, "notes.txt", 0, flags))
            for guess in GUESSES:  # the numbers of its own table
                attempt(forged(guess),
                        partial(writable.create_directory_at, guess, f"forged-{guess}"))
            self.table_during_run = self.look_at_table()
            if ctx.semantics is Semantics.COMPONENT_MODEL:
                ctx.resource_drop(ro, h)  # a borrow is given back before the call returns

        return {"run": ctx.func(run, [lent(ro)], [], name="run")}


@dataclass
class Cast:
    attempts: dict[str, str]
    unchanged: bool
    table_during_run: list[str]  # the types of the handles X held after its attempts


def dynamic_cast(semantics: Semantics, say: Narration) -> Cast:
    tree = the_folder()
    before = snapshot(tree)
    apps: list[Context] = []

    def app(ctx: Context) -> Exported:
        apps.append(ctx)
        return {}

    x = X()
    with WasiWorld({"/": tree}, semantics=semantics,
                   layers=[("read-only", read_only_layer())]) as world:
        x_inst = world.world.instantiate(
            "x", x, {"read-only": world.wasi, "implementation": world.implementation})
        world.world.instantiate("app", app, {"read-only": world.wasi, "x": x_inst})
        view = apps[0].imports["read-only"]
        root = view.preopen(0)
        say.step("app", "read-only.preopen(0)", f"handle {root} (an ro-descriptor)")
        x.look_at_table = lambda: [held.type_name for held in x_inst.holdings()]
        apps[0].imports["x"].run(root)
        say.step("app", f"x.run({root})", "X runs with the read-only handle as h")
        for action, outcome in x.attempts.items():
            say.step("x", action.replace(", forged", ""), outcome)
        say.step("world", "x's handle table after its attempts",
                 ", ".join(x.table_during_run) or "empty")
    return Cast(x.attempts, snapshot(tree) == before, x.table_during_run)


def main() -> int:
    say = Narration("attenuation: a read-only layer, and a read-only handle cast to writable")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")

    say.section("the folder")
    original = the_folder()
    say.say(f"Two identical copies of one folder: {listing(snapshot(original))}. "
            f"Fingerprint (a hash of every path and byte): {fingerprint(snapshot(original))}.")
    direct_tree, layered_tree = MemoryStorage(), MemoryStorage()
    copy_tree(original, direct_tree)
    copy_tree(original, layered_tree)

    say.section("fstool given the folder directly")
    say.say("WasiWorld({'/': folder}): the program's WASI calls go straight to the "
            "implementation, which holds the folder.")
    direct = run_fstool(direct_tree, layered=False, say=say)

    say.section("fstool given the folder through the read-only layer")
    say.say("WasiWorld({'/': folder}, layers=[('read-only', read_only_layer())]): the layer "
            "imports the implementation and exports the same interface. Every descriptor the "
            "program holds is the layer's 'ro-descriptor'; the writable one it wraps stays "
            "in the layer's own table.")
    layered = run_fstool(layered_tree, layered=True, say=say)

    say.section("side by side")
    commands = [shown(c) for c in [*READS, *WRITES]]
    say.columns(
        ["fstool command", "directly", "through the read-only layer"],
        [*([c, d, r] for c, d, r in zip(commands, direct.answers, layered.answers, strict=True)),
         ["folder fingerprint before", direct.before, layered.before],
         ["folder fingerprint after", direct.after, layered.after],
         ["descriptors open below after", str(direct.open_below), str(layered.open_below)]],
    )
    say.say(f"Afterwards the folder given directly holds: {direct.after_listing}; the one "
            f"given through the layer: {layered.after_listing}.")
    reads = len(READS)
    say.claim("directly: every write command succeeds and the folder changes",
              all(a.endswith("ok") for a in direct.answers[reads:])
              and direct.after != direct.before)
    say.claim("through the layer: cat, ls and stat answer exactly as they do directly",
              layered.answers[:reads] == direct.answers[:reads])
    say.claim("through the layer: every write command fails with errno 69 (EROFS)",
              all(a == EROFS_LINE for a in layered.answers[reads:]))
    say.claim("through the layer: the folder is unchanged (same fingerprint before and after)",
              layered.after == layered.before == direct.before)
    say.claim("through the layer: once the program is torn down nothing is left open below",
              layered.open_below == 0)

    say.section("the dynamic cast: X is given a read-only handle and also imports the "
                "implementation")
    say.say("A fresh copy of the folder, behind the read-only layer. The app holds a "
            "read-only handle h to it and calls x.run(h). X also imports the implementation "
            "itself, as a program with a writable folder of its own would. It presents h "
            "there, as if it were a writable descriptor, then tries the numbers of its own "
            "handle table.")
    casts = tell_under_each(say, ORDER, RULES, dynamic_cast)

    say.section("the cast, side by side")
    tries = [MKDIR, OPEN, *(forged(g) for g in GUESSES)]
    say.columns(
        ["what X tries", *(s.value for s in ORDER)],
        [*([what, *(casts[s].attempts[what] for s in ORDER)] for what in tries),
         ["X's table during run()", *(", ".join(casts[s].table_during_run) or "empty"
                                      for s in ORDER)],
         ["folder unchanged", *("yes" if casts[s].unchanged else "NO" for s in ORDER)]],
    )

    say.section("what this shows")
    say.say("The layer is an ordinary, unprivileged instance, yet it gives the program a "
            "weaker view of the folder than its own: it holds the writable descriptors and "
            "hands out only handles of a type it defined. Under the component model and the "
            "2021 proposal those types are private and the membrane checks them: a read-only "
            "handle presented where a writable 'descriptor' is expected is a different type, "
            "so the call traps before the implementation runs, and X's own table has nothing "
            "else to try. The answer to the question in the notes comes from the types alone.")
    for semantics in (Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021):
        got = casts[semantics]
        say.claim(f"{semantics.value}: the read-only handle cast to a writable one traps "
                  "(type-mismatch)",
                  got.attempts[MKDIR] == got.attempts[OPEN] == "trap: type-mismatch")
        say.claim(f"{semantics.value}: every forged number traps, X holds nothing but the "
                  "read-only handle, the folder is unchanged",
                  all(got.attempts[forged(g)].startswith("trap: ") for g in GUESSES)
                  and got.table_during_run == ["ro-descriptor"] and got.unchanged)
    say.say("Transparent types cannot carry a private type: a handle is a bare integer that "
            "nothing checks, so the read-only handle's number, presented to the "
            "implementation, names whatever sits at that index of the implementation's own "
            "table: the writable folder the layer holds there. The view was read-only in "
            "name only. (X's table is empty: there are no per-instance tables to look in.)")
    got = casts[Semantics.TRANSPARENT]
    say.claim("transparent: the cast goes through and X writes into the read-only folder",
              got.attempts[MKDIR] == "it worked" and not got.unchanged)
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
