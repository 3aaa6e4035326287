"""Layers: unprivileged instances stacked between a WASI implementation and its clients.

Each layer imports the interface below it as ``lower`` and exports the same interface, so
``WasiWorld(layers=[(name, definition), ...])`` can stack any number of them: the first
sits on the implementation, the last is what clients import.
"""

from .audit import AuditLogError, audit_layer
from .quota import quota_layer
from .read_only_view import read_only_layer

__all__ = ["AuditLogError", "audit_layer", "quota_layer", "read_only_layer"]
