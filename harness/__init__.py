"""Real parts for tests and benchmarks alike: private Redis servers and
topologies (Cluster, Sentinel) with their faults, the demo app under gunicorn,
a reconnecting SSE follower, chaos runs, and round-trip counting. Both
``tests/`` and ``bench/`` import from here; neither imports the other.
"""
