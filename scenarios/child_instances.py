"""Instances as resources: a parent spawns child instances; tearing one down closes its files.

The notes' next step: "give lifetimes to instances... can instances just be resources?" A
parent instance makes child instances at run time (ctx.instantiate), each a job that opens
files in a shared file library and never closes them. The parent holds each child through
an instance handle. It drops its handle to the first job, then the parent itself is destroyed
while the second job is still running.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from virtwasi.demo.narrate import Narration
from virtwasi.demo.teaching import Exported, FileLibrary, side_by_side, tell_under_each
from virtwasi.world import Context, Definition, Exports, Instance, Semantics, Trap, World, value

ORDER = [Semantics.TRANSPARENT, Semantics.COMPONENT_MODEL, Semantics.PROPOSAL_2021]
JOBS = [("job-1", 2), ("job-2", 3)]  # each child's name and how many files it opens
RULES = {
    Semantics.TRANSPARENT: "Handles to files are bare integers in the library's own table: "
    "the library never learns which instance holds which, or when one goes away.",
    Semantics.COMPONENT_MODEL: "Each child holds own handles to its files in its own table; "
    "the parent owns a handle to each child. (Teardown is this project's extension.)",
    Semantics.PROPOSAL_2021: "Each child holds shared handles to its files in its own table; "
    "the parent holds a handle to each child: instances are resources.",
}


def job(name: str, say: Narration) -> Definition:
    """A child instance: ``work(n)`` opens n files and keeps their handles."""

    def definition(ctx: Context) -> Exported:
        def work(n: int) -> None:
            handles = [ctx.imports["files"].open(f"/jobs/{name}/{i}", "") for i in range(n)]
            say.step(name, f"opens {n} files, closes none", f"handles {handles}")

        return {"work": ctx.func(work, [value], [])}

    return definition


class Parent:
    """The parent instance: spawns jobs, each importing the file library, and stops them."""

    def __init__(self, files: Instance, say: Narration) -> None:
        self.files = files
        self.say = say
        self.views: dict[str, Exports] = {}  # each child's exports, as the parent sees them

    def __call__(self, ctx: Context) -> Exported:
        def spawn(name: str, n: int) -> int:
            h = ctx.instantiate(name, job(name, self.say), {"files": self.files})
            self.say.step("parent", f"ctx.instantiate({name!r})", f"instance handle {h}")
            self.views[name] = ctx.child(h)
            self.views[name].work(n)
            return h

        def stop(h: int) -> None:
            ctx.resource_drop(ctx.instance_type, h)

        return {
            "spawn": ctx.func(spawn, [value, value], [value]),
            "stop": ctx.func(stop, [value], []),
        }


@dataclass
class Outcome:
    open_at_start: int = 0
    open_after_stop: int = 0
    open_after_parent: int = 0
    closed_by_stop: list[str] = field(default_factory=list)
    late_call: str = ""
    survivors: list[str] = field(default_factory=list)


def story(semantics: Semantics, say: Narration) -> Outcome:
    out = Outcome()
    world = World(semantics)
    lib = FileLibrary()
    files = world.instantiate("files", lib)
    parent = Parent(files, say)
    parent_inst = world.instantiate("parent", parent, {})
    handles = {name: parent_inst.exports.spawn(name, n) for name, n in JOBS}
    out.open_at_start = len(lib.open_files)
    say.step("library", "files open / closed by the destructor",
             f"{out.open_at_start} / {len(lib.closed)}")

    first = JOBS[0][0]
    parent_inst.exports.stop(handles[first])
    out.closed_by_stop = list(lib.closed)
    out.open_after_stop = len(lib.open_files)
    gone = first not in [i.name for i in world.instances]
    say.step("parent", f"drops its handle {handles[first]} to {first}",
             f"{first} {'torn down' if gone else 'still running'}; "
             f"closed {len(out.closed_by_stop)}, open {out.open_after_stop}")
    try:
        parent.views[first].work(1)
        out.late_call = "ran"
    except Trap as trap:
        out.late_call = f"trap {trap.reason.value}"
    say.step("parent", f"{first}.work(1) (its old view)", out.late_call)

    parent_inst.destroy()
    out.open_after_parent = len(lib.open_files)
    out.survivors = [i.name for i in world.instances if i.name.startswith("job")]
    say.step("world", "destroy the parent", f"jobs still alive: {out.survivors or 'none'}")
    say.step("library", "files open / closed by the destructor",
             f"{out.open_after_parent} / {len(lib.closed)}")
    world.close()
    return out


def main() -> int:
    say = Narration("child-instances: instances as resources, torn down with their handles")
    say.say(__doc__.split("\n\n", 1)[1] if __doc__ else "")
    results = tell_under_each(say, ORDER, RULES, story)
    t, cm, p = (results[s] for s in ORDER)
    side_by_side(say, "files open", results, {
        "after both jobs ran": lambda o: str(o.open_at_start),
        "after the parent drops job-1": lambda o: str(o.open_after_stop),
        "after the parent is destroyed": lambda o: str(o.open_after_parent),
        "jobs alive at the end": lambda o: ", ".join(o.survivors) or "none",
    })

    say.section("what this shows")
    say.say("With private types each job's files sit in the job's own table, so tearing the "
            "job down drops them and the library's destructor closes each one. A child is a "
            "resource of its parent: dropping the handle ends it, and so does ending the "
            "parent, like a process tree.")
    for semantics, got in ((Semantics.COMPONENT_MODEL, cm), (Semantics.PROPOSAL_2021, p)):
        say.claim(f"{semantics.value}: dropping job-1's handle closes its 2 files (5 -> 3)",
                  got.open_at_start == 5 and got.open_after_stop == 3
                  and got.closed_by_stop == ["/jobs/job-1/0", "/jobs/job-1/1"])
        say.claim(f"{semantics.value}: job-1 refuses calls; the parent's end closes job-2's too",
                  got.late_call == "trap instance-destroyed"
                  and got.open_after_parent == 0 and not got.survivors)
    say.say("With bare integers the world still ends job-1 when its handle drops, but the "
            "library never hears of it: its files leak. The parent's handle to job-2 was a "
            "bare integer too, held in no table of the parent, so the parent's teardown does "
            "not even reach job-2, which runs on, holding its files.")
    say.claim("transparent: job-1's 2 files leak when it is torn down",
              t.open_after_stop == 5 and t.closed_by_stop == [])
    say.claim("transparent: job-2 outlives its parent; all 5 files are still open",
              t.survivors == ["job-2"] and t.open_after_parent == 5)
    return say.finish()


if __name__ == "__main__":
    sys.exit(main())
