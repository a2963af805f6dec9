"""Server-Sent Events for Flask that survive dropped clients, dead workers and
lost results."""

from .errors import (
    AuthenticationRequired,
    ConfigurationError,
    ConnectionLimitExceeded,
    InvalidEventError,
    InvalidLastEventId,
    InvalidStreamId,
    InvalidStreamToken,
    ProducerConflictError,
    RedisUnavailable,
    SSEResilienceError,
    StreamIdTaken,
    StreamLimitExceeded,
    StreamNotActiveError,
    StreamNotFound,
)
from .extension import SSEResilience
from .models import CompletionData, Event, StreamMetadata, StreamState
from .producer import Producer

__all__ = [
    "AuthenticationRequired",
    "CompletionData",
    "ConfigurationError",
    "ConnectionLimitExceeded",
    "Event",
    "InvalidEventError",
    "InvalidLastEventId",
    "InvalidStreamId",
    "InvalidStreamToken",
    "Producer",
    "ProducerConflictError",
    "RedisUnavailable",
    "SSEResilience",
    "SSEResilienceError",
    "StreamIdTaken",
    "StreamLimitExceeded",
    "StreamMetadata",
    "StreamNotActiveError",
    "StreamNotFound",
    "StreamState",
]
