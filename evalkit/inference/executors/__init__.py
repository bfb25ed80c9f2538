"""Executors: where the rows that missed the cache are answered (``evaluate(executor=...)``).

``local`` answers them in this process; ``ray`` on a pool of Ray actors (``pip install 'evalkit[ray]'``).
Other packages add executors under the ``evalkit.executors`` entry-point group.
"""

from evalkit.inference.executors.base import Executor, get_executor

__all__ = ["Executor", "get_executor"]
