"""The demonstration's machinery: finding and running the scenarios (:mod:`.runner`), the
narrated transcript they print (:mod:`.narrate`), and the small instances they are built
from (:mod:`.teaching`). The scenarios themselves are :mod:`virtwasi.scenarios`."""
