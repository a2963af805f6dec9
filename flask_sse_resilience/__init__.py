"""Server-Sent Events for Flask that survive dropped clients, dead workers and
lost results."""

from .errors import (
    AuthenticationRequired,
    ConfigurationError,
    InvalidEventError,
    InvalidLastEventId,
    InvalidStreamId,
    ProducerConflictError,
    RedisUnavailable,
    SSEResilienceError,
    StreamIdTaken,
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
    "Event",
    "InvalidEventError",
    "InvalidLastEventId",
    "InvalidStreamId",
    "Producer",
    "ProducerConflictError",
    "RedisUnavailable",
    "SSEResilience",
    "SSEResilienceError",
    "StreamIdTaken",
    "StreamMetadata",
    "StreamNotActiveError",
    "StreamNotFound",
    "StreamState",
]
