"""The read side: admitting a client's stream connection and serving it events.

- :mod:`.admission`: the one admission decision for a connection and a
  cursor, and what a connection holds (the stream's record and terminal
  event, its lease) until it closes;
- :mod:`.eventstream`: one stream to one client, replayed from the log, then
  followed live, each event exactly once; how it is framed and where it goes
  is its frame sink's business;
- :mod:`.multiplex`: several streams on one response, with the combined cursor;
- :mod:`.broker`, :mod:`.pubsub`, :mod:`.timeline`: one pub/sub connection
  per worker (per node on a cluster), fanned out in-process to per-stream
  timelines that the followers read;
- :mod:`.presence`: whether the followed streams' records still exist;
- :mod:`.disconnect`: noticing a client that left.

May import ``store/``, ``redisio/`` and the shared vocabulary at the root;
never ``web/``, its sibling ``produce/``, or the wiring above it.
"""
