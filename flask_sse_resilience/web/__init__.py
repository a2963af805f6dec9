"""HTTP: the blueprint and everything a request meets before the stream.

Here: the stream and recover responses and the blueprint (``views``),
reading a stream request (``streamrequest``: who asks, from where), the
cancel and key routes (``control``), the multiplexed route (``multi``), the
operations dashboard (``dashboard``) and signed stream tokens (``tokens``).
Checks, status codes, headers and the ``Response``; no Redis command: the
routes ask the app's state and the stores.

May import: the app's state (``state``, ``opening``), ``serve``,
``produce``, ``store``, ``redisio`` and the root vocabulary. Imported by the
extension only.
"""
