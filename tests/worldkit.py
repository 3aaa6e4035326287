"""Small instances the world tests are built from: a file library and a scriptable agent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from virtwasi.world import (
    Context,
    Func,
    Instance,
    ResourceType,
    Semantics,
    Trap,
    World,
    given,
    lent,
    value,
)

Exported = Mapping[str, Func | ResourceType]


class FileLib:
    """A library instance defining the private types 'file' and 'dir'.

    Representations are dicts; the destructor records each one it closes, in order, so a
    test can check it ran once, with the original representation.
    """

    def __init__(self) -> None:
        self.closed: list[dict[str, Any]] = []
        self.ctx: Context
        self.file: ResourceType
        self.dir: ResourceType

    def __call__(self, ctx: Context) -> Exported:
        self.ctx = ctx
        self.file = file = ctx.resource_type("file", destructor=self.closed.append)
        self.dir = ctx.resource_type("dir", destructor=self.closed.append)

        def rep_of(h: Any) -> dict[str, Any]:
            rep: dict[str, Any] = ctx.rep_of(file, h)
            return rep

        def open_(path: str) -> int:
            return ctx.resource_new(file, {"path": path, "data": ""})

        def opendir(path: str) -> int:
            return ctx.resource_new(self.dir, {"path": path})

        def path(h: Any) -> str:
            return str(rep_of(h)["path"])

        def write(h: Any, text: str) -> None:
            rep_of(h)["data"] += text

        def read(h: Any) -> str:
            return str(rep_of(h)["data"])

        def close(h: int) -> None:
            ctx.resource_drop(file, h)

        return {
            "file": file,
            "dir": self.dir,
            "open": ctx.func(open_, [value], [given(file)], name="open"),
            "opendir": ctx.func(opendir, [value], [given(self.dir)]),
            "path": ctx.func(path, [lent(file)], [value]),
            "write": ctx.func(write, [lent(file), value], []),
            "read": ctx.func(read, [lent(file)], [value]),
            "close": ctx.func(close, [given(file)], []),
        }


class Agent:
    """A client instance whose context the test keeps, so the test can act as it.

    It exports ``take`` (receives a handle to keep), ``hold`` (receives a handle for one call
    and runs ``during`` while holding it) and ``run`` (runs any callable as this instance).
    """

    def __init__(
        self,
        file_type: ResourceType | None = None,
        extra: Callable[[Context], Exported] | None = None,
    ) -> None:
        self.ctx: Context
        self.kept: list[int] = []
        self.during: Callable[[int], Any] = lambda h: None
        self._file_type = file_type
        self._extra = extra

    def __call__(self, ctx: Context) -> Exported:
        self.ctx = ctx
        exports: dict[str, Func | ResourceType] = {
            "run": ctx.func(lambda fn: fn(), [value], [value], name="run"),
        }
        if self._file_type is not None:
            rtype = self._file_type

            def take(h: int) -> None:
                self.kept.append(ctx.keep(rtype, h))

            def hold(h: int) -> Any:
                return self.during(h)

            exports["take"] = ctx.func(take, [given(rtype)], [])
            exports["hold"] = ctx.func(hold, [lent(rtype)], [value])
        if self._extra is not None:
            exports.update(self._extra(ctx))
        return exports


class FilesWorld:
    """A world with the file library instantiated as 'files', ready for clients."""

    def __init__(self, semantics: Semantics) -> None:
        self.world = World(semantics)
        self.lib = FileLib()
        self.files = self.world.instantiate("files", self.lib)

    def client(self, name: str, agent: Agent | None = None) -> tuple[Agent, Instance]:
        """A new agent instance importing the library; the agent keeps its context."""
        agent = agent or Agent(self.lib.file)
        return agent, self.world.instantiate(name, agent, {"files": self.files})


def caught(inst: Instance, attempt: Callable[[], Any]) -> Trap | None:
    """The trap ``attempt`` meets when ``inst``'s own code runs it (through its ``run``
    export) and catches it there, or None. A trap an instance catches does not escape it,
    so it carries on; one that goes back to code the test runs for it locks it."""

    def inside() -> Trap | None:
        try:
            attempt()
        except Trap as trap:
            return trap
        return None

    found: Trap | None = inst.exports.run(inside)
    return found
