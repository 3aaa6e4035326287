"""Instances, and the context through which an instance's own code acts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import entry, handles, membrane
from .entry import Answers
from .resources import Destructor, HandleTable, HeldHandle, ResourceType
from .semantics import Semantics
from .trap import LinkError, Trap
from .types import Func, Signature, ValType

if TYPE_CHECKING:
    from .world import World

ExportValue = Func | ResourceType
Definition = Callable[["Context"], Mapping[str, ExportValue]]
"""The code of an instance: called once with its context, returns what it exports."""


class Instance:
    """A running thing with a handle table and a lifetime.

    Made by :meth:`World.instantiate` (or by another instance through
    :meth:`Context.instantiate`). ``exports`` calls its functions as the embedder; the
    embedder's handles live in ``world.host``'s table. After :meth:`destroy` every handle
    it held has been dropped, every resource it defined has been destructed, and any call
    into it traps. Under component-model semantics, once a trap has escaped it,
    :attr:`trapped` holds that trap and any call into it traps too.

    An ``Instance`` is the embedder's object: no instance's own code can reach one through
    its :class:`Context`. Observers (scenarios, tests) read what it holds through
    :meth:`holdings`, :meth:`held`, :attr:`handle_count` and :meth:`defines`; ``table`` is
    the world's own bookkeeping.
    """

    def __init__(self, world: World, name: str, parent: Instance | None = None) -> None:
        self.world = world
        self.name = name
        self.table = HandleTable(name)
        self.defined_types: list[ResourceType] = []
        self.functions: dict[str, Func] = {}
        self.types: dict[str, ResourceType] = {}
        self.active = 0  # calls (and destructors) of this instance in progress
        self.destroyed = False
        self.parent = parent
        """The instance that made this one (``Context.instantiate``), or None."""
        self.lineage: tuple[Instance, ...] = (self,) if parent is None else (self, *parent.lineage)
        """This instance and its ancestors: what a call from it is already inside."""
        self.trapped: BaseException | None = None
        """The trap that escaped this instance and left it unusable (component-model), or
        None: every later call into it traps ``instance-trapped``, naming this one."""
        self.leave_forbidden = 0  # World.forbidding_leave blocks in progress
        self.restricted = False
        """Whether anything restricts this instance's calls: destroyed, trapped, or forbidden
        to leave. The membrane's fast paths test only this; the general path says which."""
        self._self_resource: Any = None  # the Resource naming this instance, if a child
        # The host instance is made first, and is its own caller.
        self.exports = Exports(self, getattr(world, "host", self))

    def restrict(self) -> None:
        """Bring :attr:`restricted` up to date after a change of what it sums up."""
        self.restricted = (self.destroyed or self.trapped is not None
                           or self.leave_forbidden > 0)

    @property
    def handle_count(self) -> int:
        """How many handles this instance holds now."""
        return len(self.table)

    def holdings(self) -> tuple[HeldHandle, ...]:
        """A snapshot of every handle this instance holds now, by increasing index. Under
        transparent semantics a client holds nothing: its integers index the definer's
        table, so they appear in the definer's holdings."""
        return tuple(HeldHandle.of(index, handle) for index, handle in self.table.items())

    def held(self, index: int) -> HeldHandle:
        """A snapshot of the handle at ``index`` in this instance's table; ``KeyError`` if
        no handle is there (an observer's question, not a guest operation: no trap)."""
        try:
            handle = self.table.get(index)
        except Trap:
            raise KeyError(f"instance {self.name!r} holds no handle {index}") from None
        return HeldHandle.of(index, handle)

    def defines(self, rtype: ResourceType) -> bool:
        """Whether this instance defined ``rtype``."""
        return rtype._definer is self

    def destroy(self) -> None:
        """Tear the instance down (see :meth:`World.destroy`)."""
        self.world.destroy(self)

    def __repr__(self) -> str:
        state = ("destroyed" if self.destroyed else "trapped" if self.trapped is not None
                 else "live")
        return f"<Instance {self.name!r} {state}>"


class BoundFunc:
    """An exported function as seen from one caller: calling it crosses the membrane.

    It shows its ``name`` and its signature (``params``, ``results``), never the instance
    or the Python function behind it.
    """

    __slots__ = ("_caller", "_func", "_lowered")

    def __init__(self, caller: Instance, func: Func) -> None:
        self._caller = caller
        self._func = func
        self._lowered: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        return membrane.call(self._caller, self._func, args)

    @property
    def name(self) -> str:
        """The function's name, as its instance made it."""
        return self._func.name

    @property
    def params(self) -> tuple[ValType, ...]:
        """The parameter types, as the world's semantics resolved them."""
        return self._func.params

    @property
    def results(self) -> tuple[ValType, ...]:
        """The result types, as the world's semantics resolved them."""
        return self._func.results

    @property
    def lowered(self) -> Callable[..., Any]:
        """The same call as a plain function specialized for this caller and function (see
        :func:`membrane.lowered`): what a hot caller binds once and calls directly."""
        if self._lowered is None:
            self._lowered = membrane.lowered(self._caller, self._func)
        return self._lowered

    def __repr__(self) -> str:
        return f"<{self._caller.name} -> {self._func._instance.name}.{self._func.name}>"


class Exports:
    """An instance's exports as seen from one caller: ``exports.name(...)`` calls a function,
    ``exports["name"]`` also gives a resource type."""

    def __init__(self, target: Instance, caller: Instance) -> None:
        self._target = target
        self._caller = caller
        self._bound: dict[str, BoundFunc] = {}

    def __getitem__(self, name: str) -> BoundFunc | ResourceType:
        if name in self._target.types:
            return self._target.types[name]
        bound = self._bound.get(name)
        if bound is None:
            func = self._target.functions.get(name)
            if func is None:
                raise LinkError(f"instance {self._target.name!r} exports nothing named {name!r}")
            bound = self._bound[name] = BoundFunc(self._caller, func)
        return bound

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._target.types
        yield from self._target.functions

    def __dir__(self) -> list[str]:
        """The export names (so that ``dir`` enumerates what can be reached)."""
        return sorted(self)


def _answers(name: str, raises: Answers) -> Answers:
    if not isinstance(raises, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in raises):
        raise TypeError(f"{name}: raises must be a tuple of exception classes, not {raises!r}")
    if any(issubclass(Trap, t) for t in raises):
        raise TypeError(f"{name}: a Trap is never an answer, so raises cannot name {raises!r}")
    return raises


class Context:
    """What an instance's own code may do: the only door to its privileges.

    A definition receives its context once, at instantiation. Through it the instance defines
    resource types and functions, creates and reads handles of the types it defined, drops or
    passes the handles it holds, calls its imports, and makes child instances. Nothing here
    reaches another instance's table or another definer's representations: no public
    attribute of the context, of its imports (:class:`Exports`) or of their items
    (:class:`BoundFunc`, :class:`ResourceType`) leads to an :class:`Instance`, a handle
    table, a handle or a resource (``tests/test_boundary.py`` walks them all).

    Each act that may trap hands what it raises to :func:`.entry.reached`: when the
    instance runs no call, the embedder runs its code, and a trap it meets locks it.
    """

    def __init__(self, inst: Instance, imports: Mapping[str, Instance]) -> None:
        self._inst = inst
        self._imports = _Imports(inst, imports)

    @property
    def name(self) -> str:
        return self._inst.name

    @property
    def semantics(self) -> Semantics:
        return self._inst.world.semantics

    @property
    def handle_count(self) -> int:
        return len(self._inst.table)

    def _live(self) -> Instance:
        inst = self._inst
        if inst.restricted:
            entry.require_running(inst)
        return inst

    def _leaving(self, what: str, rtype: ResourceType | None = None) -> Instance:
        """The instance, for an act that leaves it (``what``, on a handle of ``rtype``)."""
        inst = self._inst
        if inst.restricted:
            entry.require_may_leave(inst, what if rtype is None else
                                    f"{what} of {rtype.name!r} (defined by {rtype.definer_name!r})")
        return inst

    # -- definitions -------------------------------------------------------------------
    def resource_type(self, name: str, destructor: Destructor | None = None,
                      *, raises: Answers = ()) -> ResourceType:
        """A new resource type defined by this instance (a new one on every call).
        ``raises``: the exceptions the destructor raises as answers (a close's error, which
        reaches whoever dropped the handle), not as traps; see ``func``."""
        inst = self._live()
        rtype = ResourceType(name, inst, destructor, _answers(name, raises))
        inst.defined_types.append(rtype)
        return rtype

    def func(
        self,
        fn: Callable[..., Any],
        params: Sequence[Signature] = (),
        results: Sequence[Signature] = (),
        name: str | None = None,
        *,
        representations: bool = False,
        raises: Answers = (),
    ) -> Func:
        """Describe ``fn`` for export: which parameters and results carry handles. Prefer
        :func:`~virtwasi.world.lent` and :func:`~virtwasi.world.given`, which mean the same
        under every semantics, to a specific ``own``/``borrow``/``shared``. With
        ``representations``, every lent parameter of a type this instance defined reaches
        ``fn`` as its representation, under every semantics (what :meth:`rep_of` would
        give), at no cost where a borrow already arrives as one; and a first result that
        is a handle of such a type (any other result a plain value) is returned by ``fn``
        as a representation, of which the world makes the new handle straight in the
        caller's table (what :meth:`resource_new` and returning the handle would do, in
        one step).

        ``raises``: the exceptions ``fn`` raises as answers (the error case of a result),
        which reach the caller as they are. Under component-model semantics any other
        exception leaving ``fn`` is a trap, which leaves this instance unusable."""
        name = name or fn.__name__
        return Func(self._live(), name, fn, params, results, representations,
                    _answers(name, raises))

    # -- handles -----------------------------------------------------------------------
    def resource_new(self, rtype: ResourceType, rep: Any) -> int:
        """A new resource of a type this instance defined; returns its handle index. The
        representation cannot be an ``int`` (a ``TypeError``): see :meth:`rep_of`."""
        try:
            return handles.new(self._leaving("make a handle", rtype), rtype, rep)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def resource_rep(self, rtype: ResourceType, handle: int) -> Any:
        """The representation behind a handle this instance holds, of a type it defined."""
        try:
            return handles.rep(self._live(), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def check_handle(self, rtype: ResourceType, handle: int) -> None:
        """Trap unless this instance holds a live handle of ``rtype`` at ``handle``: what
        a handle crossing a component's call must be before anything is done with it."""
        inst = self._live()
        table = handles.holding_table(inst, rtype)
        handles.require_alive(handles.lookup(table, handle, rtype).resource, inst, handle)

    def handle_checker(self, rtype: ResourceType) -> Callable[[int], int]:
        """:meth:`check_handle` of ``rtype`` as one function, answering the index: the
        common case (a live handle of ``rtype`` where this instance's integers point) is
        decided in place, anything else by :meth:`check_handle`, which traps as it says."""
        inst, check = self._inst, self.check_handle
        slots = handles.holding_table(inst, rtype)._slots  # one list for the table's life

        def checked(index: int) -> int:
            if type(index) is int and index > 0 and not inst.destroyed:
                try:
                    handle = slots[index]
                except IndexError:
                    handle = None
                if handle is not None and handle.rtype is rtype and handle.resource.alive:
                    return index
            check(rtype, index)
            return index

        return checked

    def defines(self, rtype: ResourceType) -> bool:
        """Whether this instance defined ``rtype`` (only it may make or read its handles)."""
        return rtype._definer is self._inst

    def resource_drop(self, rtype: ResourceType, handle: int) -> None:
        """Drop a handle: an own (or the last shared) one runs the type's destructor."""
        try:
            handles.drop(self._leaving("drop a handle", rtype), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def resource_destroy(self, rtype: ResourceType, handle: int) -> None:
        """proposal-2021: destroy the resource now; every other handle to it becomes null."""
        try:
            handles.destroy(self._leaving("destroy a resource", rtype), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def resource_clone(self, rtype: ResourceType, handle: int) -> int:
        """proposal-2021: another handle to the same resource."""
        try:
            return handles.clone(self._leaving("copy a handle", rtype), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    # -- the same, under any semantics ----------------------------------------------------
    def rep_of(self, rtype: ResourceType, lent: Any) -> Any:
        """The representation behind ``lent``, a :func:`~virtwasi.world.lent` parameter of
        a type this instance defined. Under component-model it arrives as the
        representation itself and is returned as it is; under proposal-2021 (a handle in
        this table) and transparent (an index of this, the definer's, table) it is an
        ``int`` and is read as :meth:`resource_rep` reads it, with its traps."""
        try:
            return handles.rep_of(self._live(), rtype, lent)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def end(self, rtype: ResourceType, handle: int) -> None:
        """End a handle this instance holds (a file's close): under proposal-2021
        :meth:`resource_destroy` (every other copy becomes null), otherwise
        :meth:`resource_drop`. An exception from the destructor propagates to the caller."""
        try:
            handles.end(self._leaving("end a handle", rtype), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def ender(self, rtype: ResourceType) -> Callable[[int], None]:
        """:meth:`end` for handles of ``rtype``, as a plain function decided once for this
        instance and the world's semantics: what a caller that closes often binds."""
        return handles.ender(self._live(), rtype, lambda handle: self.end(rtype, handle))

    def keep(self, rtype: ResourceType, handle: int) -> int:
        """The handle to keep beyond the call from a :func:`~virtwasi.world.given`
        parameter: under proposal-2021 a :meth:`resource_clone` (the parameter itself is a
        copy dropped when the call returns), otherwise ``handle`` itself."""
        try:
            return handles.keep(self._leaving("keep a handle", rtype), rtype, handle)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    # -- other instances ---------------------------------------------------------------
    @property
    def imports(self) -> Mapping[str, Exports]:
        """This instance's imports, each called as this instance."""
        return self._imports

    def connect(self, target: Instance) -> Exports:
        """Call ``target``'s exports as this instance (holding an ``Instance`` is the right)."""
        return Exports(target, self._live())

    def instantiate(
        self,
        name: str,
        definition: Definition,
        imports: Mapping[str, Instance] | None = None,
    ) -> int:
        """Make a child instance; returns this instance's handle to it. Dropping that handle
        (``resource_drop(world_instance_type, h)``) tears the child down."""
        try:
            return self._inst.world.instantiate_child(self._leaving("make an instance"), name,
                                                      definition, imports or {})
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    def child(self, handle: int) -> Exports:
        """The exports of the child instance behind ``handle``, called as this instance."""
        try:
            inst = self._live()
            return Exports(inst.world.instance_of(inst, handle), inst)
        except BaseException as exc:
            entry.reached(self._inst, exc)
            raise

    @property
    def instance_type(self) -> ResourceType:
        """The resource type of instance handles, defined by the world's host."""
        return self._inst.world.instance_type


class _Imports(Mapping[str, Exports]):
    def __init__(self, inst: Instance, imports: Mapping[str, Instance]) -> None:
        self._inst = inst
        self._views = {name: Exports(target, inst) for name, target in imports.items()}

    def __getitem__(self, name: str) -> Exports:
        view = self._views.get(name)
        if view is None:
            raise LinkError(f"instance {self._inst.name!r} has no import named {name!r}")
        return view

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)
