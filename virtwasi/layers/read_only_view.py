"""A read-only view of the implementation interface, written as an unprivileged layer:
attenuation.

The layer imports the interface as ``lower`` and exports the same interface, with a private
resource type of its own in place of each lower one (``ro-descriptor`` for ``descriptor``,
``ro-directory-entry-stream``), exported under the same name, built by :mod:`.wrapping`:
each read-only handle wraps a lower one that the layer holds and never hands out, and
ending it (or tearing down a client that left it open) ends the one below. Each function
is decided by its declared category:

- what reads (``reads``) passes through; ``get_flags`` too, with ``write`` and
  ``mutate-directory`` taken out, so a client sees a descriptor it cannot change through;
- ``open_at`` (``opens``) of an existing file or directory for reading passes, with the
  flags it answers taken down as ``get_flags`` takes them; asking to write, create or
  truncate answers ``read-only``; ``preopen`` passes;
- what writes data (``writes``) answers ``bad-descriptor``: no descriptor of the layer is
  open for writing, as for any file opened read-only on Linux;
- what changes the tree (``changes-tree``: make, remove, rename, link or symlink a name,
  set times) answers ``read-only``;
- a category the layer has no rule for is refused (``unsupported``): it fails closed.

``read-only`` is Linux's ``EROFS``, what ``virtwasi run --ro`` answers. wasmtime's built-in
WASI answers ``EPERM`` for a preopen it serves without mutation.

Under ``component-model`` and ``proposal-2021`` semantics the read-only types are really
private: a read-only handle passed where the lower ``descriptor`` is expected traps with
``TYPE_MISMATCH`` at the membrane, so whoever is given one cannot cast it back to a writable
descriptor. Under ``transparent`` semantics the layer still works for a client that plays
fair, but by definition a private type cannot be carried: handles are bare integers that
nothing checks, so the number of a read-only handle, presented to the implementation
itself, names whatever writable descriptor sits at that index of its table. (Nothing
closes a dead client's files there either, with or without the layer.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..filesystem.errors import ErrorCode, FsError
from ..filesystem.interface import (
    CREATE,
    MUTATE_DIRECTORY,
    TRUNCATE,
    WRITE,
    Category,
    Function,
)
from ..world import Context, Definition, Func, ResourceType
from .wrapping import Rule, Wrapping

WRITE_OPEN_FLAGS = CREATE | TRUNCATE
ATTENUATED = WRITE | MUTATE_DIRECTORY  # the descriptor flags a read-only view takes away


def read_only_layer() -> Definition:
    """The definition of a read-only layer; instantiate it with the interface as ``lower``.

    Every resource type the lower interface exports gets a private counterpart here
    (``ro-descriptor``, ``ro-directory-entry-stream``), exported under the same name.
    """

    def definition(ctx: Context) -> dict[str, Func | ResourceType]:
        layer = Wrapping(ctx, "ro")
        lower_of = layer.lower_of

        def refusing(code: ErrorCode) -> Rule:
            return lambda function: layer.refuse(function, code)

        def open_at(function: Function) -> Callable[..., Any]:
            opened = layer.forward(function)
            ((_, rtype),) = layer.handle_slots(function)

            def checked(h: Any, path_flags: int, path: str, open_flags: int,
                        flags: int) -> Any:
                if open_flags & WRITE_OPEN_FLAGS or flags & WRITE:
                    lower_of(h, rtype)  # a bad handle traps first
                    raise FsError(ErrorCode.READ_ONLY)
                handle, kind, got = opened(h, path_flags, path, open_flags, flags)
                return handle, kind, got & ~ATTENUATED  # as get_flags will say

            return checked

        def get_flags(function: Function) -> Callable[..., Any]:
            flags_below = layer.forward(function)
            return lambda h: flags_below(h) & ~ATTENUATED

        return layer.exports(
            {"open_at": open_at, "get_flags": get_flags, "preopen": layer.forward},
            {Category.READS: layer.forward,
             Category.WRITES: refusing(ErrorCode.BAD_DESCRIPTOR),
             Category.CHANGES_TREE: refusing(ErrorCode.READ_ONLY)})

    return definition
