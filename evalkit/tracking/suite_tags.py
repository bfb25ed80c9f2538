"""The tags by which a run says it belongs to the nightly job, and whether its gates passed.

The suite (``evalkit.suite``) writes them and the registry's evidence check reads them, so they
live here, below both: the store never imports the suite. The suite's other tag names are in
``evalkit.suite.tags``.
"""

from __future__ import annotations

ROLE = "evalkit.suite.role"  # PARENT on the suite run, PAIR on each (dataset, model) child
STATUS = "evalkit.suite.status"  # passed, failed or error (the parent's covers the whole job)
PARENT, PAIR = "parent", "pair"  # the values of ROLE
PASSED = "passed"  # the value of STATUS when every gate passed
