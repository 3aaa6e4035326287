"""Batches: one wasm command run over many inputs, each item in a world of its own, on a
local process pool or a Dask cluster (``virtwasi map``, :func:`virtwasi.map`).

* :mod:`.plan`: the items and the plan every item follows (templates, mounts, outputs);
* :mod:`.worker`: one item run, wherever an engine runs it;
* :mod:`.outputs`: what an item publishes, whole, once it succeeded;
* :mod:`.engines`: the process pool and Dask;
* :mod:`.results`: the results table and its summary;
* :mod:`.driver`: all of it together, behind :func:`map`;
* :mod:`.command`: ``virtwasi map``.

Names are imported on first use, so that the command line declares ``map`` without loading
the engines.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SOURCES = {"map": ".driver", "BatchResult": ".results", "ItemResult": ".results",
            "Item": ".plan", "Output": ".plan", "Plan": ".plan"}

__all__ = ["BatchResult", "Item", "ItemResult", "Output", "Plan", "map"]

if TYPE_CHECKING:
    from .driver import map
    from .plan import Item, Output, Plan
    from .results import BatchResult, ItemResult


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(source, __name__), name)
