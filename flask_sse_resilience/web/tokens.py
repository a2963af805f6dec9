"""Signed stream tokens, for clients that cannot send a cookie.

``EventSource`` cannot set headers, so a browser on another origin (or a
client without the app's session cookie) authenticates with a short-lived
token in the query string: ``/sse/streams/<id>?token=...``. A token names one
stream and one user, is signed with the app's ``SECRET_KEY`` (itsdangerous,
with a salt of its own) and expires after ``SSE_RESILIENCE_TOKEN_MAX_AGE``.

Tokens are secrets: keep query strings out of access logs (the demo's gunicorn
config logs the path only).
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import InvalidStreamToken

SALT = "flask-sse-resilience.stream-token"


def _serializer(secret_key: str | bytes | None) -> URLSafeTimedSerializer:
    if not secret_key:
        raise RuntimeError("stream tokens need the app's SECRET_KEY to be set")
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def make_token(secret_key: str | bytes | None, stream_id: str, user_id: str) -> str:
    """Return a token that lets ``user_id`` follow ``stream_id`` for a while."""
    return str(_serializer(secret_key).dumps({"s": stream_id, "u": user_id}))


def read_token(
    secret_key: str | bytes | None, token: str, stream_id: str, max_age: int
) -> str:
    """Return the user a valid token for ``stream_id`` was made for.

    :raises InvalidStreamToken: if the token is malformed, tampered with,
        expired, or made for another stream.
    """
    return read_token_expiry(secret_key, token, stream_id, max_age)[0]


def read_token_expiry(
    secret_key: str | bytes | None, token: str, stream_id: str, max_age: int
) -> tuple[str, float]:
    """Return the user a valid token for ``stream_id`` was made for, and
    when it expires (epoch seconds).

    :raises InvalidStreamToken: as :func:`read_token`.
    """
    if len(token) > 1024:
        raise InvalidStreamToken()
    try:
        claims, signed = _serializer(secret_key).loads(
            token, max_age=max_age, return_timestamp=True
        )
    except BadSignature:  # also SignatureExpired and malformed payloads
        raise InvalidStreamToken() from None
    if (
        not isinstance(claims, dict)
        or claims.get("s") != stream_id
        or not isinstance(claims.get("u"), str)
        or not claims["u"]
    ):
        raise InvalidStreamToken()
    return str(claims["u"]), signed.timestamp() + max_age
