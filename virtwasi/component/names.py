"""The names a ``component-name`` custom section gives to a component's definitions.

Names only help people read messages and traces, so a section that cannot be read never
refuses a component: :func:`component_names` keeps what it read before the fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .binary import ByteReader, ComponentReadError
from .model import Component, Sort
from .reader import read_sort

SECTION = "component-name"


@dataclass(frozen=True)
class ComponentNames:
    component: str | None = None
    """The component's own name."""
    by_sort: Mapping[Sort, Mapping[int, str]] = field(default_factory=dict)

    def of(self, sort: Sort, index: int) -> str | None:
        """The name of index ``index`` of ``sort``, if the section gives one."""
        return self.by_sort.get(sort, {}).get(index)


def component_names(component: Component) -> ComponentNames:
    """The names in ``component``'s own name section (nested components have theirs)."""
    own: str | None = None
    by_sort: dict[Sort, dict[int, str]] = {}
    for custom in component.custom_sections:
        if custom.name != SECTION:
            continue
        r = ByteReader(custom.data)
        try:
            while not r.at_end():
                kind = r.byte("name subsection")
                body = r.sub(r.u32("name subsection size"), "name subsection")
                if kind == 0:
                    own = body.name()
                elif kind == 1:
                    names = by_sort.setdefault(read_sort(body), {})
                    for _ in range(body.count("name")):
                        index = body.u32("index")
                        names[index] = body.name()
        except ComponentReadError:
            pass  # keep the names read so far
    return ComponentNames(own, by_sort)
