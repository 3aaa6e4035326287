"""The small instances the scenarios are built from, and the way they tell a story.

A file library that defines the private resource type 'file'; client instances the
scenarios act through; and the telling of one story under several semantics, then side by
side. The same code runs under every semantics: "this handle is yours now" is
:func:`~virtwasi.world.given`, "use it for this call" is :func:`~virtwasi.world.lent`, and
the context reads a lent handle (``rep_of``), keeps a given one (``keep``) and ends one
(``end``) as the world's semantics says.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from virtwasi.demo.narrate import Narration
from virtwasi.world import (
    Context,
    Func,
    ResourceType,
    Semantics,
    Trap,
    given,
    lent,
    value,
)

Exported = dict[str, Func | ResourceType]
"""What an instance definition exports: its functions and resource types, by name."""

T = TypeVar("T")


def imported_type(ctx: Context, interface: str, name: str) -> ResourceType:
    """The resource type ``name`` that the import ``interface`` exports, as a client learns it."""
    rtype = ctx.imports[interface][name]
    assert isinstance(rtype, ResourceType)
    return rtype


def trapped(trap: Trap) -> str:
    """A trap in a few words: its reason, and the instance it was raised in, if any."""
    return f"trap {trap.reason.value}" + (f" in {trap.instance!r}" if trap.instance else "")


class FileLibrary:
    """The file library: defines the private type 'file' and exports ``open(path, text)``,
    ``read(h)`` and ``write(h, text)``.

    A file's representation holds its path and its text. The destructor closes the file and
    stores its text: nothing reaches storage before that. The library keeps the record:
    which files are open, which the destructor closed, what was stored, and how many calls
    its own code began. A variant adds functions of its own by extending :meth:`funcs`.
    """

    def __init__(self) -> None:
        self.open_files: list[str] = []  # the paths of the files open now
        self.closed: list[str] = []  # the paths of the files the destructor closed, in order
        self.stored: dict[str, str] = {}  # path -> the text stored when the file closed
        self.entered = 0  # calls the library's own code has begun

    def __call__(self, ctx: Context) -> Exported:
        file = ctx.resource_type("file", destructor=self.destructor)
        return {"file": file, **self.funcs(ctx, file)}

    def destructor(self, rep: dict[str, str]) -> None:
        """The destructor of 'file': closes the file and stores its text."""
        self.open_files.remove(rep["path"])
        self.closed.append(rep["path"])
        self.stored[rep["path"]] = rep["text"]

    def funcs(self, ctx: Context, file: ResourceType) -> Exported:
        """The library's functions, over its type ``file``."""

        def open_(path: str, text: str) -> int:
            self.entered += 1
            self.open_files.append(path)
            return ctx.resource_new(file, {"path": path, "text": text})

        def text_of(h: Any) -> dict[str, str]:
            self.entered += 1  # the library's own code is running now
            rep: dict[str, str] = ctx.rep_of(file, h)
            return rep

        def read(h: Any) -> str:
            return text_of(h)["text"]

        def write(h: Any, text: str) -> None:
            text_of(h)["text"] += text

        return {
            "open": ctx.func(open_, [value, value], [given(file)], name="open"),
            "read": ctx.func(read, [lent(file)], [value]),
            "write": ctx.func(write, [lent(file), value], []),
        }


class ScriptedClient:
    """A client instance that exports nothing: the scenario acts through its context, as the
    client's own code would."""

    ctx: Context

    def __call__(self, ctx: Context) -> Exported:
        self.ctx = ctx
        return self.exports(ctx)

    def exports(self, ctx: Context) -> Exported:
        return {}


class Peer(ScriptedClient, ABC):
    """A client of the file library that other clients can give a file (``take``: it keeps
    the handle), lend one for a call (``inspect``, which each variant defines), and call
    back in the middle of a call (``progress``: runs ``on_progress``)."""

    file: ResourceType  # the library's 'file' type, as learnt from the import "files"

    def __init__(self) -> None:
        self.kept: list[int] = []
        self.on_progress: Callable[[], None] = lambda: None

    def exports(self, ctx: Context) -> Exported:
        self.file = file = imported_type(ctx, "files", "file")

        def take(h: int) -> None:
            self.kept.append(ctx.keep(file, h))

        return {
            "take": ctx.func(take, [given(file)], []),
            "inspect": ctx.func(self.inspect, [lent(file)], []),
            "progress": ctx.func(lambda: self.on_progress(), [], [], name="progress"),
        }

    @abstractmethod
    def inspect(self, h: int) -> None:
        """Use the file ``h``, lent for this call."""


def tell_under_each(
    say: Narration,
    order: Iterable[Semantics],
    rules: Mapping[Semantics, str],
    story: Callable[[Semantics, Narration], T],
) -> dict[Semantics, T]:
    """Tell ``story`` under each semantics of ``order``, each in a section of its own that
    opens with the semantics' rule where ``rules`` states one; what each telling came to."""
    results: dict[Semantics, T] = {}
    for semantics in order:
        say.section(semantics.value)
        if semantics in rules:
            say.say(rules[semantics])
        results[semantics] = story(semantics, say)
    return results


def side_by_side(
    say: Narration,
    corner: str,
    results: Mapping[Semantics, T],
    rows: Mapping[str, Callable[[T], str]],
) -> None:
    """The section "side by side": a column for each semantics, in the order ``results``
    were told, and a row for each question, whose cells ``rows[question]`` makes of what
    each telling came to."""
    say.section("side by side")
    say.columns(
        [corner, *(semantics.value for semantics in results)],
        [[question, *(cell(got) for got in results.values())] for question, cell in rows.items()],
    )
