"""The demo: sign in, start a fake "generation", watch it stream.

Run it with ``make demo``, or ``gunicorn -c examples/demo/gunicorn.conf.py
'examples.demo.app:create_app()'``. Configuration comes from the environment
with the ``FLASK_`` prefix, e.g. ``FLASK_SSE_RESILIENCE_REDIS_URL`` and
``FLASK_SECRET_KEY``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import Flask, jsonify, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from flask_sse_resilience import (
    AutoSnapshot,
    SSEResilience,
    SSEResilienceError,
    StreamCancelled,
)

sse = SSEResilience()
log = logging.getLogger(__name__)

MAX_TOKENS = 10_000
MAX_INTERVAL_MS = 60_000
MAX_PROMPT = 10_000


@sse.identity_loader
def current_user() -> str | None:
    """The demo's identity: a name kept in the signed session cookie."""
    user = session.get("user")
    return user if isinstance(user, str) else None


#: Who may open the operations dashboard (``/sse/_dashboard``).
ADMINS = frozenset(os.environ.get("DEMO_ADMINS", "admin").split(","))


@sse.dashboard_auth
def is_admin() -> bool:
    """The demo's admin check: a signed-in user named in ``DEMO_ADMINS``."""
    return current_user() in ADMINS


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the demo app; ``config`` overrides the environment."""
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY="demo-only-secret-change-me",
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SSE_RESILIENCE_DASHBOARD=True,
    )
    app.config.from_prefixed_env()
    app.config.update(config or {})
    sse.init_app(app)
    try:  # pages and JSON compressed; event streams never (see deployment docs)
        from flask_compress import Compress
    except ImportError:
        pass
    else:
        Compress(app)

    @app.errorhandler(HTTPException)
    def json_error(exc: HTTPException) -> Any:
        if isinstance(exc, SSEResilienceError):
            return exc  # already a JSON answer with its own error code
        response = jsonify(
            error=(exc.name or "error").lower().replace(" ", "_"),
            message=exc.description,
        )
        response.status_code = exc.code or 500
        return response

    @app.after_request
    def tag_worker(response: Any) -> Any:
        # Demo only: lets tests see which worker answered.
        response.headers["X-Demo-Worker"] = str(os.getpid())
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html", user=current_user())

    @app.post("/login")
    def login() -> Any:
        body = request.get_json(silent=True)
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or not 1 <= len(user) <= 64:
            return _bad("user must be a string of 1-64 characters")
        session["user"] = user
        return jsonify(user=user)

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return jsonify(user=None)

    @app.post("/generations")
    def start_generation() -> Any:
        user = current_user()
        if user is None:
            return jsonify(error="authentication_required", message="Sign in."), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _bad("the body must be a JSON object")
        try:
            params = _generation_params(body)
            key, on_conflict = body.get("key"), body.get("on_conflict", "reject")
            # A chat id: one running generation per chat and user.
            stream_id = sse.open_stream(
                user,
                stream_type="generation",
                metadata={"tokens": params["tokens"]},
                key=key,
                on_conflict=on_conflict,
            )
        except ValueError as exc:
            return _bad(str(exc))
        if not stream_id.joined:
            start(app, stream_id, params)
        url = url_for("sse_resilience.stream", stream_id=stream_id)
        # A signed token for clients without the session cookie (another
        # origin): append ?token=... to the stream or recover URL.
        token = sse.stream_token(stream_id, user)
        answer = {"streamId": stream_id, "streamUrl": url, "token": token}
        status = 200 if stream_id.joined else 201
        return jsonify({**answer, "joined": stream_id.joined}), status

    return app


def start(app: Flask, stream_id: str, params: dict[str, Any]) -> None:
    """Run the generation on a thread, or hand it to RQ workers when
    ``DEMO_QUEUE_URL`` names a Redis (see ``examples/rq_worker``)."""
    queue_url = os.environ.get("DEMO_QUEUE_URL")
    if queue_url:
        from examples.rq_worker.jobs import enqueue

        enqueue(queue_url, stream_id, params)
        return
    worker = threading.Thread(
        target=generate, args=(app, stream_id), kwargs=params, daemon=True
    )
    worker.start()


def _bad(message: str) -> Any:
    return jsonify(error="bad_request", message=message), 400


def _int(body: dict[str, Any], name: str, low: int, high: int, default: Any) -> Any:
    value = body.get(name, default)
    if value is None and default is None:
        return None
    valid = isinstance(value, int) and not isinstance(value, bool)
    if not valid or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return value


def _generation_params(body: dict[str, Any]) -> dict[str, Any]:
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT:
        raise ValueError(f"prompt must be a string of at most {MAX_PROMPT} characters")
    tokens = _int(body, "tokens", 1, MAX_TOKENS, 20)
    return {
        "prompt": prompt,
        "tokens": tokens,
        "interval_ms": _int(body, "interval_ms", 0, MAX_INTERVAL_MS, 100),
        "fail_after": _int(body, "fail_after", 0, tokens, None),
    }


def _add_text(so_far: str, _type: str, data: dict[str, Any]) -> str:
    """The snapshot of a generation: its text so far."""
    return so_far + str(data["text"])


class GenerationFailed(RuntimeError):
    """Raised on purpose by a generation asked to fail."""


def generate(
    app: Flask,
    stream_id: str,
    *,
    prompt: str,
    tokens: int,
    interval_ms: int,
    fail_after: int | None,
) -> None:
    """Produce ``tokens`` token events, then complete (or fail on request).

    Stops between tokens when the stream is cancelled (the Stop button, a
    superseding generation of the same chat, or nobody watching), ending it
    with the text so far.
    """
    # Imported here, in the worker: a gunicorn master that preloads the app
    # (--preload) must not import Redis before the extension has gevent
    # patch it (see flask_sse_resilience.preflight).
    from redis.exceptions import RedisError

    words = prompt.split() or ["token"]
    text: list[str] = []
    try:
        # Writes ride out a Redis restart or failover of up to 30 s
        # (SSE_RESILIENCE_PRODUCER_RETRY_FOR; idempotent, never doubled).
        # A second device opening the chat mid-answer starts from the text
        # so far (a snapshot every 100 tokens), not from token one.
        snapshots = AutoSnapshot(100, _add_text, "")
        with sse.producer(stream_id, app=app, snapshots=snapshots) as out:
            try:
                for index in range(tokens):
                    if fail_after is not None and index == fail_after:
                        raise GenerationFailed(f"failed after {fail_after} tokens")
                    piece = f"{words[index % len(words)]}{index} "
                    # Raises StreamCancelled once the stream was asked to stop
                    # (no round trip when this process already knows).
                    out.send("token", {"index": index, "text": piece})
                    text.append(piece)
                    if interval_ms:
                        time.sleep(interval_ms / 1000)
                out.complete({"prompt": prompt, "text": "".join(text)})
            except StreamCancelled:
                log.info("generation %s stopped after %d tokens", stream_id, len(text))
                out.cancel({"prompt": prompt, "text": "".join(text)})
    except GenerationFailed:
        log.info("generation %s failed on request", stream_id)
    except RedisError as exc:
        # Redis down past the producer's retries, or full (a refused write
        # is not retried): the extension logged the cause once, not per
        # generation; the guardian ends the stream if the producer could not.
        log.info("generation %s stopped: %s: %s", stream_id, type(exc).__name__, exc)
    except Exception:
        log.exception("generation %s crashed", stream_id)
