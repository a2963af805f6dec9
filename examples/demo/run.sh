#!/bin/sh
# Run the demo under gunicorn with gevent workers on http://127.0.0.1:8000.
# Uses FLASK_SSE_RESILIENCE_REDIS_URL when set; otherwise starts a private
# redis-server (no persistence) for as long as the demo runs.
set -eu
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
REDIS_PID=""

cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if [ -z "${FLASK_SSE_RESILIENCE_REDIS_URL:-}" ]; then
  PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p .demo
  redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir .demo --loglevel warning --logfile redis.log &
  REDIS_PID=$!
  i=0
  until redis-cli -p "$PORT" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.1
  done
  export FLASK_SSE_RESILIENCE_REDIS_URL="redis://127.0.0.1:$PORT/0"
  echo "private redis-server on port $PORT (pid $REDIS_PID, log in .demo/redis.log)"
fi

echo "demo on http://${DEMO_BIND:-127.0.0.1:8000} (Ctrl-C to stop)"
"$VENV/bin/gunicorn" -c examples/demo/gunicorn.conf.py 'examples.demo.app:create_app()'
