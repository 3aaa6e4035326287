"""The three handle semantics a world can be made with."""

from __future__ import annotations

import enum


class Semantics(enum.Enum):
    """How handles behave when they cross between instances.

    ``COMPONENT_MODEL``: the final component model. ``own`` handles are unique and move when
    passed; ``borrow`` handles are lent for one call. Teardown of an instance is an extension
    of this project: the final specification has no instance teardown.

    ``PROPOSAL_2021``: the January 2021 proposal. Handles are copyable values sharing one
    ref-counted resource whose destructor runs when the last handle drops; an explicit destroy
    runs it at once and leaves every other handle null (using one traps in the callee).
    Instances are resources and tearing one down drops its handles.

    ``TRANSPARENT``: "take one" of the seed notes. The defining instance hands out bare
    integers that index its own table; nothing checks who uses them and nothing tells the
    definer when a client goes away. It exists to show what goes wrong.
    """

    COMPONENT_MODEL = "component-model"
    PROPOSAL_2021 = "proposal-2021"
    TRANSPARENT = "transparent"
