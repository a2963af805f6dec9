"""The stream aggregate in Redis, and its sweeps.

Here: every key name (``keys``), every Lua script and the one way to call
it (``scripts``, with ``lua/*.lua`` beside it), the records and the active
index (``registry``), the capped log and the terminal write (``eventlog``,
and ``logentries`` for what it holds, read back), cancel requests
(``control``), terminal events (``completion``), connection leases
(``leases``), dashboard counters (``stats``) and the guardian with its
schedule (``guardian``, ``scheduling``). Only this folder knows a key, a
script's arguments or its replies.

May import: ``redisio`` and the root vocabulary.
"""
