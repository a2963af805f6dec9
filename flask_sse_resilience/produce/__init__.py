"""The write side: a producer and everything between ``send`` and the log.

Here: the producer (``producer``), its sends held and written together
(``coalescer``), its writes retried through outages (``logwriter``), the
process's batched liveness writes (``heartbeat``), snapshots for late joiners
(``snapshots``) and what a producer may send (``eventcheck``).

May import: ``store``, ``redisio`` and the root vocabulary; never ``serve``
(the read side), nor anything above.
"""
