"""The read side: admitting a client, replaying and following a stream.

Here: a connection's admission and footprint (``admission``), one response's
events (``eventstream``), several streams on one response (``multiplex``),
the worker's pub/sub fan-out (``broker``) over its connections (``pubsub``),
a stream's recent events in one process (``timeline``), the check that a
followed stream still exists (``presence``) and noticing that a client left
(``disconnect``).

May import: ``store``, ``redisio`` and the root vocabulary; never
``produce`` (the write side), nor anything above.
"""
