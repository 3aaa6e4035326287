"""The native WASI implementation: host file descriptors under preopened host folders."""

from .wasi import NativeWasi

__all__ = ["NativeWasi"]
