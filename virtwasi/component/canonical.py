"""The canonical ABI, synchronous part: component values lifted from and lowered into core wasm.

A function type is compiled once (:meth:`Canonical.func`) into a :class:`FuncABI` of
closures specialized for its types (:mod:`.lifting`, over the layouts of :mod:`.layout`), so
a call never walks a type tree. Each call gets a :class:`CallContext` (:mod:`.values`): a
function giving a fresh view of the memory the canonical options name, their ``realloc``,
and the :class:`ResourceCalls` through which handles go.

Python values:

==============================  =======================================================
``bool``, integers, floats      ``bool``, ``int``, ``float`` (NaNs lifted canonical)
``char``, ``string``            ``str`` (one character for ``char``)
``list<u8>``; other lists       ``bytes`` (one slice, never per element); ``list``
``record``; ``tuple``           ``dict`` keyed by field name; ``tuple``
``variant``; ``enum``           :class:`Variant` ``(case, value)``; the case name
``option<T>``                   ``None`` or the value; :class:`Some` wraps it only when T
                                is itself an option, so ``some(none)`` is ``Some(None)``
``result``                      :class:`Ok` or :class:`Err`, with ``value`` (None if none)
``flags``                       a ``set`` of the names that are set
``own``, ``borrow``             whatever :class:`ResourceCalls` gives and takes
==============================  =======================================================

A guest that breaks a rule (a pointer out of bounds or misaligned, invalid UTF-8 or UTF-16,
a char that is no Unicode scalar, a discriminant out of range, a ``realloc`` answer out of
bounds) gets a :class:`Trap` naming it, raised before any work proportional to a length it
gave. As the spec and wasmtime do, bits of a ``flags`` value beyond its labels are ignored,
a ``bool`` is any non-zero value, and an integer is its low bits. A Python value that does not
fit its type is the host's mistake: ``ValueError`` or ``TypeError``, raised before the guest
function runs (parts of a compound value lowered before the bad one may already have been
copied into the guest's memory by its ``realloc``; a bad string or list changes nothing).

Strings are lowered as wasmtime lowers its own (UTF-8) strings, which the spec allows: the
same ``realloc`` calls, a worst-case size then a shrink for UTF-16 and latin1+utf16.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from .layout import (
    MAX_FLAT_PARAMS,
    MAX_FLAT_RESULTS,
    LocalTypes,
    Shape,
    ShapeCache,
    TypeSpace,
    shape_of,
    tuple_shape,
)
from .lifting import ValueABI, compile_value
from .model import StringEncoding
from .types import CoreFuncType, CoreValType, FuncType, ValType
from .values import M32, M64, CallContext, Err, Ok, ResourceCalls, Some, Trap, Variant

__all__ = [
    "MAX_FLAT_PARAMS", "MAX_FLAT_RESULTS", "CallContext", "Canonical", "Err", "FuncABI",
    "LocalTypes", "Ok", "ResourceCalls", "Some", "Trap", "ValueABI", "Variant",
]


class Canonical:
    """Compiles the types of one type space into lift and lower closures, each type once."""

    def __init__(self, types: TypeSpace) -> None:
        self.types = types
        self._shapes: ShapeCache = {}
        self._values: dict[tuple[Shape, StringEncoding], ValueABI] = {}
        self._funcs: dict[tuple[FuncType, StringEncoding], FuncABI] = {}

    def shape(self, t: ValType) -> Shape:
        found = shape_of(t, self.types, self._shapes)
        assert found is not None
        return found

    def func(self, ft: FuncType, encoding: StringEncoding = StringEncoding.UTF8) -> FuncABI:
        key = (ft, encoding)
        found = self._funcs.get(key)
        if found is None:
            params = tuple(self.shape(t) for _, t in ft.params)
            result = None if ft.result is None else self.shape(ft.result)
            found = self._funcs[key] = FuncABI(self, ft, params, result, encoding)
        return found

    def value(self, t: ValType | Shape, encoding: StringEncoding = StringEncoding.UTF8
              ) -> ValueABI:
        shape = t if isinstance(t, Shape) else self.shape(t)
        key = (shape, encoding)
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = compile_value(
                shape, encoding, lambda part: self.value(part, encoding))
        return found


_CORE = {"i32": CoreValType.I32, "i64": CoreValType.I64, "f32": CoreValType.F32,
         "f64": CoreValType.F64}


class FuncABI:
    """A function type compiled for one string encoding: both sides of its calls.

    A host calling a guest export (``canon lift``): :meth:`lower_params`, the core call,
    :meth:`lift_results`, then post-return with the core results. A guest calling a host
    import (``canon lower``): :meth:`lift_params` from the core arguments, the host call,
    then :meth:`lower_results`, whose list is the core results.
    """

    def __init__(self, canon: Canonical, func_type: FuncType, params: tuple[Shape, ...],
                 result: Shape | None, encoding: StringEncoding) -> None:
        self.func_type = func_type
        """The function type it was compiled from, with its parameter names."""
        self.params = [canon.value(p, encoding) for p in params]
        self.result = None if result is None else canon.value(result, encoding)
        self.flat_params = tuple(t for p in params for t in p.flat)
        self.flat_results = () if result is None else result.flat
        self.spill_params = len(self.flat_params) > MAX_FLAT_PARAMS
        self.spill_result = len(self.flat_results) > MAX_FLAT_RESULTS
        self._spilled = tuple_shape(params)
        self._offsets = self._spilled.offsets()
        self._starts = [sum(len(p.flat) for p in params[:j]) for j in range(len(params))]

    def core_type(self, context: Literal["lift", "lower"]) -> CoreFuncType:
        """The core function type the spec gives this function on that side of a call."""
        params = ("i32",) if self.spill_params else self.flat_params
        results = ("i32",) if self.spill_result else self.flat_results
        if context == "lower" and self.spill_result:
            params, results = (*params, "i32"), ()
        return CoreFuncType(tuple(_CORE[t] for t in params), tuple(_CORE[t] for t in results))

    def _arity(self, args: Sequence[Any]) -> None:
        if len(args) != len(self.params):
            raise TypeError(f"the function takes {len(self.params)} arguments, "
                            f"not {len(args)}")

    def lower_params(self, cx: CallContext, args: Sequence[Any]) -> list[Any]:
        """The core arguments for a call into the guest."""
        self._arity(args)
        if self.spill_params:
            ptr = cx.allocate(0, 0, self._spilled.align, self._spilled.size, "the arguments")
            for p, off, v in zip(self.params, self._offsets, args, strict=True):
                p.store(cx, v, ptr + off)
            return [ptr]
        out: list[Any] = []
        for p, v in zip(self.params, args, strict=True):
            p.lower_flat(cx, v, out)
        return out

    def lift_results(self, cx: CallContext, flat: Sequence[Any]) -> Any:
        """The result of a call into the guest, from its core results."""
        result = self.result
        if result is None:
            return None
        if self.spill_result:
            ptr = flat[0] & M32
            cx.span(ptr, result.shape.size, result.shape.align, "the results")
            return result.load(cx, ptr)
        return result.lift_flat(cx, flat, 0)

    def call(self, cx: CallContext, core: Callable[..., Sequence[Any]], args: Sequence[Any],
             post_return: Callable[..., Any] | None = None) -> Any:
        """A whole call into the guest: ``core`` is its core function, taking the core
        arguments and returning the list of core results; ``post_return`` (the option's
        function, if any) gets those results once the value is lifted out of them."""
        results = core(*self.lower_params(cx, args))
        value = self.lift_results(cx, results)
        if post_return is not None:
            post_return(*results)
        return value

    def lift_params(self, cx: CallContext, flat: Sequence[Any]) -> list[Any]:
        """The arguments of a call from the guest, from its core arguments."""
        if self.spill_params:
            ptr = flat[0] & M32
            cx.span(ptr, self._spilled.size, self._spilled.align, "the arguments")
            return [p.load(cx, ptr + off) for p, off in zip(self.params, self._offsets,
                                                            strict=True)]
        return [p.lift_flat(cx, flat, start) for p, start in zip(self.params, self._starts,
                                                                 strict=True)]

    def host_call(self, fn: Callable[..., Any], cx: CallContext,
                  borrows: Callable[[object], Callable[[int], int]]
                  ) -> Callable[[Sequence[Any]], Any]:
        """A guest's calls of the host function ``fn`` (``canon lower``) with the context
        ``cx``, compiled: from the core arguments to the one core result (None if none), as
        :meth:`lift_params`, ``fn`` and :meth:`lower_results` make it, in fewer steps. A
        ``borrow`` parameter is checked by the function ``borrows`` gives for its resource
        type (every other handle goes through the context's :class:`ResourceCalls`)."""
        lower_results, result = self.lower_results, self.result
        mask = _MASKS.get(self.flat_results[0]) if len(self.flat_results) == 1 else None
        lift = self._lift_params_in(cx, borrows)
        only = self.params[0].shape if len(self.params) == 1 and not self.spill_params \
            else None
        if result is not None and self.spill_result:
            size, align, store, span = result.shape.size, result.shape.align, result.store, \
                cx.span
            if only is not None and only.kind == "borrow":  # a method of no arguments
                check = borrows(only.resource)

                def method(flat: Sequence[Any]) -> None:
                    value = fn(check(flat[0] & M32))
                    ptr = flat[-1] & M32
                    span(ptr, size, align, "the results")
                    store(cx, value, ptr)

                return method

            def spilled(flat: Sequence[Any]) -> None:
                value = fn(*lift(flat))
                ptr = flat[-1] & M32
                span(ptr, size, align, "the results")
                store(cx, value, ptr)

            return spilled
        if result is None:
            def nothing(flat: Sequence[Any]) -> None:
                fn(*lift(flat))

            return nothing
        if mask is None:  # a result of no core values (an empty record, say)
            def empty(flat: Sequence[Any]) -> None:
                lower_results(cx, fn(*lift(flat)), flat)

            return empty

        def single(flat: Sequence[Any]) -> Any:
            out = lower_results(cx, fn(*lift(flat)), flat)
            return out[0] & mask if mask is not None else out[0]

        return single

    def _lift_params_in(self, cx: CallContext,
                        borrows: Callable[[object], Callable[[int], int]]
                        ) -> Callable[[Sequence[Any]], list[Any]]:
        """:meth:`lift_params` with the context ``cx``, a ``borrow`` checked by its
        checker."""
        if self.spill_params or not self.params:
            lift_params = self.lift_params
            return lambda flat: lift_params(cx, flat)
        lifts: list[Callable[[Sequence[Any]], Any]] = []
        for p, start in zip(self.params, self._starts, strict=True):
            if p.shape.kind == "borrow":
                lifts.append(_borrow_at(borrows(p.shape.resource), start))
            else:
                lifts.append(_lift_at(p.lift_flat, cx, start))
        if len(lifts) == 1:
            first = lifts[0]
            return lambda flat: [first(flat)]
        if len(lifts) == 2:
            first, second = lifts
            return lambda flat: [first(flat), second(flat)]
        return lambda flat: [lift(flat) for lift in lifts]

    def lower_results(self, cx: CallContext, value: Any, flat_args: Sequence[Any]
                      ) -> list[Any]:
        """The core results of a call from the guest; when the result does not fit in
        one core value it is stored where the guest's last core argument points."""
        result = self.result
        if result is None:
            return []
        if self.spill_result:
            ptr = flat_args[-1] & M32
            cx.span(ptr, result.shape.size, result.shape.align, "the results")
            result.store(cx, value, ptr)
            return []
        out: list[Any] = []
        result.lower_flat(cx, value, out)
        return out


_MASKS = {"i32": M32, "i64": M64}


def _lift_at(lift_flat: Callable[[CallContext, Sequence[Any], int], Any], cx: CallContext,
             start: int) -> Callable[[Sequence[Any]], Any]:
    return lambda flat: lift_flat(cx, flat, start)


def _borrow_at(check: Callable[[int], int], start: int) -> Callable[[Sequence[Any]], Any]:
    return lambda flat: check(flat[start] & M32)
