"""gunicorn settings for the demo: gevent workers, so each SSE client is a
greenlet, not a thread. Override any of them on the command line."""

import os

# Optional: attach each worker at boot, so its guardian starts at once (without
# these hooks a worker attaches on its first request; stops and reloads move
# streams promptly either way). Importing them imports no Redis.
from flask_sse_resilience.gunicorn import (  # noqa: F401
    post_worker_init,
    worker_exit,
    worker_int,
)

bind = os.environ.get("DEMO_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("DEMO_WORKERS", "2"))
worker_class = "gevent"
# Each open SSE response holds one worker connection; keep this below the
# process's open-file limit (one socket per client, plus a few for Redis).
worker_connections = int(os.environ.get("DEMO_WORKER_CONNECTIONS", "4000"))
# gevent workers notify the arbiter from their own greenlet, so a long stream
# never trips this; it only catches a worker whose hub is truly blocked.
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("DEMO_ACCESS_LOG")
# The path without the query string: stream tokens travel in the query.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)s'
errorlog = "-"
# No gunicornc control socket: several demos (tests, benchmarks) may run at once.
control_socket_disable = True
loglevel = os.environ.get("DEMO_LOG_LEVEL", "info")
