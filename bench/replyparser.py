"""hiredis or redis-py's own parser, measured on the product's hot paths.

Decides whether ``hiredis`` is a hard dependency (pyproject.toml says which,
with these figures). Each trial runs in a fresh process tree, alternating the
two conditions so both see the same machine load:

* **with hiredis**: the package as installed;
* **without**: ``hiredis`` hidden from every process of the trial (a stub
  module first on ``PYTHONPATH`` that raises ``ImportError``, which is what
  redis-py sees when it is not installed), so redis-py falls back to its
  pure-Python parser and command packer.

A trial measures what the product does all day: ``bench.llm``'s concurrent
generations (N streams at 50 tokens/s through ``Producer.send`` with the
default 40 ms coalescing window, each followed by a client of ONE gunicorn
gevent worker): the worker's CPU per 1,000 delivered tokens (pub/sub reads,
log reads, socket writes) and the producer's CPU per token (script calls);
then a follower catching up on a log it is ``behind`` events behind (one
``XRANGE`` replay: the largest replies the product reads).

``python -m bench.replyparser [--streams 200] [--seconds 5] [--rounds 3]``
prints one line per trial and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("hiredis", "python")
FIGURES = ("cpu_ms_per_1000", "producer_us_per_token", "p50_ms", "catch_up_ms")


def trial(streams: int, seconds: float, behind: int) -> dict[str, Any]:
    """One trial in this process tree, in whichever condition it was started."""
    import redis.utils

    from bench.llm import Producers, generations
    from bench.rig import LoadClient, Server
    from bench.suite import resume
    from harness.redis_server import RedisServer

    server_redis = RedisServer().start()
    client, producers = LoadClient(), Producers()
    server = Server("ours", server_redis)
    try:
        server.start()
        result = generations(
            server, client, producers, server_redis, streams, seconds, 40
        )
        result.update(resume(server, behind))
    finally:
        server.stop()
        producers.stop()
        client.stop()
        server_redis.cleanup()
    result["hiredis"] = redis.utils.HIREDIS_AVAILABLE
    return result


def run_condition(condition: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start one trial as a child process tree in ``condition``."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="no-hiredis-") as stub:
        if condition == "python":
            Path(stub, "hiredis.py").write_text(
                'raise ImportError("hidden by bench.replyparser")\n'
            )
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (stub, env.get("PYTHONPATH", "")) if p
            )
        out = subprocess.run(
            [sys.executable, "-m", "bench.replyparser", "--trial",
             "--streams", str(args.streams), "--seconds", str(args.seconds),
             "--behind", str(args.behind)],
            cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["hiredis"] != (condition == "hiredis"):
        raise RuntimeError(f"{condition}: redis-py saw hiredis={result['hiredis']}")
    return result


def main() -> None:
    """Run the trials and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--behind", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.streams, args.seconds, args.behind)))
        return
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
    for round_ in range(args.rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = CONDITIONS if round_ % 2 == 0 else CONDITIONS[::-1]
        for condition in order:
            result = run_condition(condition, args)
            results[condition].append(result)
            print(
                condition,
                " ".join(f"{k}={result[k]:.1f}" for k in (*FIGURES, "share")),
                f"lost={result['lost']} doubled={result['doubled']}",
                flush=True,
            )
    print(f"medians of {args.rounds} rounds, {args.streams} streams x 50 tok/s:")
    for condition in CONDITIONS:
        medians = {
            k: statistics.median(r[k] for r in results[condition]) for k in FIGURES
        }
        print(condition, " ".join(f"{k}={v:.1f}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
