"""WASI preview 1: the ABI (constants and layouts), errno mapping and guest memory access."""
