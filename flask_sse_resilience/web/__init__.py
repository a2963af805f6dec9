"""HTTP: the extension's blueprint. Checks, status codes, headers and the
``Response``; no Redis commands of its own (it asks the parts that own the data).

- :mod:`.views`: the stream and recover responses, the blueprint, and the
  JSON answers to data-layer errors;
- :mod:`.streamrequest`: reading a stream request: who asks, and from where;
- :mod:`.multi`: the multiplexed response;
- :mod:`.control`: cancelling a stream, and finding one by key;
- :mod:`.dashboard`: the operations page;
- :mod:`.tokens`: signed stream tokens.

May import the per-app state and the opening actions, and everything below
them (``serve/``, ``produce/``, ``store/``, ``redisio/``, the shared vocabulary);
never the entry points above it.
"""
