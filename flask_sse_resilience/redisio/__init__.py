"""Talking to Redis, and surviving it.

Here: building the client from a URL (``connect``, with its fair pool in
``pool``), sending commands, pipelines and scripts (``commands``), per-node
pipelines on a cluster (``pernode``), round trips shared by concurrent
requests (``sharedpipe``), what "unavailable" means (``failures``), loops
that never die (``loops``), one log line per outage (``outages``, naming the
target from ``target``), memory (``memory``) and ``flask sse check``
(``health``). Knows nothing of streams.

May import: the root vocabulary only. (Named ``redisio`` to stay clear of the
``redis`` package.)
"""
