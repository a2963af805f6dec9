"""What "Redis is unavailable" means, defined once: every error that means
"not now" rather than "wrong" (:data:`UNAVAILABLE`), the two redis-py has no
class for (:class:`NodeInTransition`, :class:`WrongDatabase`), and the typed
error the public API raises for them (:func:`store_error`). Nothing else in
the package lists Redis errors."""

from __future__ import annotations

from redis import exceptions as rx

from ..errors import RedisOutOfMemory, RedisUnavailable


class NodeInTransition(rx.ResponseError):
    """A reply error redis-py has no class for that means "not now" rather
    than "wrong": ``NOREPLICAS`` (too few replicas to accept a write, as during
    a failover) and ``BUSY`` (a script or module runs past its time limit).
    Raised by this package in place of the plain ``ResponseError``."""


class WrongDatabase(rx.ConnectionError):
    """The URL names a database the server does not have (``SELECT`` said
    ``DB index is out of range``), raised on connect by the clients this
    package builds (see :mod:`~flask_sse_resilience.redisio.connect`). A connection
    error, so it is answered and logged as Redis being unavailable, with its
    own explanation (see :mod:`~flask_sse_resilience.redisio.target`)."""

    def __init__(self, db: int, databases: int | None) -> None:
        #: The database asked for.
        self.db = db
        #: How many the server has (its ``databases`` setting), if it said.
        self.databases = databases
        has = f"; it has {databases}" if databases is not None else ""
        super().__init__(f"Redis has no database {db}{has} (DB index is out of range)")


#: Reply prefixes turned into :class:`NodeInTransition`.
_TRANSIENT_PREFIXES = ("NOREPLICAS", "BUSY ")

#: Every error meaning "Redis cannot serve this right now, try again soon":
#: answered with a 503, retried by producers with ``retry_for``, and survived
#: by every background loop. Defined once; nothing else in the package lists
#: Redis errors.
#:
#: - ``ConnectionError`` (with ``BusyLoadingError``: ``LOADING`` while a
#:   restarted Redis reads its dataset; ``MaxConnectionsError``; a sentinel
#:   client's "the previous master is now a replica") and ``TimeoutError``
#:   (a paused or sleeping server);
#: - ``ClusterError``: ``CLUSTERDOWN`` (every node, while a failed master is
#:   not yet replaced), ``MASTERDOWN`` (a replica whose master is gone) and
#:   "TTL exhausted" (redirections that never settled);
#: - ``TryAgainError`` (``TRYAGAIN``: a multi-key call on a slot being
#:   migrated) and ``AskError`` / ``MovedError`` (``ASK`` / ``MOVED`` that
#:   redis-py did not resolve, as in a resharding storm);
#: - ``ReadOnlyError`` (``READONLY``: a write reached a demoted master);
#: - ``RedisClusterException``: a slot map with a hole mid-failover
#:   (``SlotNotCoveredError``), or no node reachable to read the map from;
#: - :class:`NodeInTransition` (``NOREPLICAS``, ``BUSY``);
#: - :class:`WrongDatabase` (a ``ConnectionError``: the URL's database number
#:   is out of range), which no retry heals but which is answered the same way;
#: - ``OutOfMemoryError`` (``OOM``: ``maxmemory`` reached under
#:   ``maxmemory-policy noeviction``, so Redis refuses writes and still
#:   serves reads). Unlike the others it is answered with its own code,
#:   ``redis_out_of_memory``, is logged as an episode of its own, and
#:   producers do not retry it (see :func:`is_out_of_memory`).
UNAVAILABLE: tuple[type[Exception], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterError,
    rx.TryAgainError,
    rx.AskError,
    rx.ReadOnlyError,
    rx.RedisClusterException,
    NodeInTransition,
    rx.OutOfMemoryError,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Redis refusing a write because it is full (``OOM command not
    allowed when used memory > 'maxmemory'``): a plain command's reply, a
    pipeline's, or a script's first write."""
    return isinstance(exc, rx.OutOfMemoryError)


def store_error(exc: BaseException) -> RedisUnavailable:
    """The typed error the public API raises (and a view answers 503) for
    ``exc``, one of :data:`UNAVAILABLE`: :class:`RedisOutOfMemory` for a
    full Redis, else :class:`RedisUnavailable`."""
    return RedisOutOfMemory() if is_out_of_memory(exc) else RedisUnavailable()


def reply_error(exc: Exception) -> Exception:
    """The exception to raise for an error reply: :class:`NodeInTransition`
    for a transient reply redis-py leaves as a plain ``ResponseError``."""
    if type(exc) is rx.ResponseError and str(exc).startswith(_TRANSIENT_PREFIXES):
        return NodeInTransition(str(exc))
    return exc
