"""Runtimes compared: what one run produced (:mod:`.result`, the result every runtime
adapter in :mod:`virtwasi.adapters` returns), and one module run on several runtimes with
their results and final trees compared (:mod:`.diff`)."""
