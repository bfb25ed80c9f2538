"""The Ray executor (``evaluate(executor="ray")``, ``pip install 'evalkit[ray]'``).

- ``executor``: the driver side: a pool of worker actors fed with batches, outcomes streamed back;
- ``worker``: the actor that answers a batch with evalkit's own runner and its own client;
- ``limiter``: one request/token budget and one Retry-After pause for the whole cluster.

Nothing here imports Ray until the executor is used.
"""
