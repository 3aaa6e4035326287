"""Layers: unprivileged instances stacked between a WASI implementation and its clients.

Each layer imports the interface below it as ``lower`` and exports the same interface, so
``WasiWorld(layers=[(name, definition), ...])`` can stack any number of them.
"""

from .readonly import read_only_layer

__all__ = ["read_only_layer"]
