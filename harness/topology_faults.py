"""Faults a chaos run injects into a real Redis topology, and how it heals.

Every fault is a real event on real processes: a master killed (``SIGKILL``)
and, once its replica took over, restarted to rejoin as a replica; clients
paused (``CLIENT PAUSE``); pub/sub connections cut (``CLIENT KILL TYPE
pubsub``); a standalone Redis shut down with its data and restarted (it
answers ``LOADING`` while it reads the dataset back).
"""

from __future__ import annotations

import random
from typing import Any, Protocol

import redis

from harness.redis_server import RedisServer
from harness.redis_topologies import ClusterFixture, SentinelFixture, _until


def _bare(node: RedisServer) -> redis.Redis:
    return redis.Redis(port=node.port, socket_timeout=2, decode_responses=True)


def _role(node: RedisServer) -> str:
    return str(_bare(node).info("replication")["role"])


def _synced_replica(node: RedisServer) -> bool:
    info = _bare(node).info("replication")
    return info["role"] == "slave" and info["master_link_status"] == "up"


def _common(rng: random.Random, nodes: list[RedisServer], pause_ms: int) -> str:
    node = rng.choice(nodes)
    if rng.random() < 0.5:
        # Well below the failure detection (Sentinel's down-after 1 s, the
        # cluster's node timeout 1.5 s), also on a loaded machine: a pause,
        # not a failover (see docs/scaling.rst on a master paused past it).
        _bare(node).execute_command(
            "CLIENT", "PAUSE", rng.randint(200, pause_ms), "ALL"
        )
        return "client pause"
    _bare(node).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    return "pub/sub killed"


class Faults(Protocol):
    """A topology's faults."""

    name: str

    def strike(self, rng: random.Random) -> str:
        """Inject one random fault; return its kind."""

    def fail_over(self, key: str) -> str:
        """Kill the master serving ``key`` and wait for its replacement."""

    def heal(self) -> None:
        """Restart what is down; return once every node serves again."""

    def client(self) -> Any:
        """A client reading every key (every master of a cluster)."""


class ClusterFaults:
    name = "cluster"

    def __init__(self, cluster: ClusterFixture) -> None:
        self.cluster = cluster

    def _live(self) -> list[RedisServer]:
        return [n for n in self.cluster.nodes if n.proc is not None]

    def strike(self, rng: random.Random) -> str:
        if rng.random() < 0.4:
            masters = [n for n in self._live() if _role(n) == "master"]
            victim = rng.choice(masters)
            self._kill(victim)
            self.heal()
            return "master killed"
        return _common(rng, self._live(), 800)

    def _kill(self, victim: RedisServer) -> None:
        victim_id = _bare(victim).execute_command("CLUSTER", "MYID")
        victim.kill()
        witness = next(n for n in self._live())

        def failed() -> bool:
            for line in _bare(witness).execute_command("CLUSTER", "NODES").splitlines():
                if line.startswith(victim_id):
                    return "fail" in line.split()[2].split(",")
            return False

        _until(failed, 30, "the cluster to see the master fail")
        self.cluster.wait_healthy(30)  # its replica took over

    def fail_over(self, key: str) -> str:
        self._kill(self.cluster.master_of(key))
        return "master killed"

    def heal(self) -> None:
        for node in self.cluster.nodes:
            if node.proc is None:
                node.start()
                _until(lambda n=node: _synced_replica(n), 30, "rejoin as replica")
        self.cluster.wait_healthy(30)
        for node in self.cluster.nodes:  # every master has a synced replica
            if _role(node) == "slave":
                _until(lambda n=node: _synced_replica(n), 30, "replica sync")

    def client(self) -> Any:
        return self.cluster.client()


class SentinelFaults:
    name = "sentinel"

    def __init__(self, sentinel: SentinelFixture) -> None:
        self.sentinel = sentinel

    def _master(self) -> RedisServer:
        port = self.sentinel.current_master()
        return next(
            s for s in (self.sentinel.master, self.sentinel.replica) if s.port == port
        )

    def strike(self, rng: random.Random) -> str:
        if rng.random() < 0.3:
            return self.fail_over("")
        return _common(rng, [self._master()], 500)

    def _agreed(self) -> int | None:
        """The master's port if every sentinel names the same one."""
        ports = set()
        for sentinel in self.sentinel.sentinels:
            client = redis.Redis(port=sentinel.port, decode_responses=True)
            try:
                ports.add(int(client.sentinel_get_master_addr_by_name("mymaster")[1]))
            finally:
                client.close()
        return ports.pop() if len(ports) == 1 else None

    def fail_over(self, key: str) -> str:
        old = self._master()
        old.kill()
        _until(lambda: self._agreed() not in (None, old.port), 30, "promotion")
        self.heal()
        return "master killed"

    def heal(self) -> None:
        """Restart a dead server as a replica of the current master, as an
        operator (or its persisted, sentinel-rewritten config) would: never
        as an empty second master."""
        for server in (self.sentinel.master, self.sentinel.replica):
            if server.proc is None:
                master = self._agreed()
                assert master is not None
                extra = list(server.extra)
                if "--replicaof" in extra:
                    at = extra.index("--replicaof")
                    del extra[at : at + 3]
                server.extra = (*extra, "--replicaof", "127.0.0.1", str(master))
                server.start()
                _until(lambda s=server: _synced_replica(s), 30, "rejoin as replica")
        # Whatever came before (a test's failover), the replica holds the
        # master's data before the next fault: a failover then loses nothing.
        _until(self.sentinel.replica_synced, 30, "replica sync")

    def client(self) -> Any:
        return redis.Redis(port=self.sentinel.current_master(), decode_responses=True)


class StandaloneFaults:
    name = "standalone"

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    def strike(self, rng: random.Random) -> str:
        if rng.random() < 0.4:
            return self.fail_over("")
        return _common(rng, [self.server], 800)

    def fail_over(self, key: str) -> str:
        """Shut down with the data saved, and start again (it loads it)."""
        proc = self.server.proc
        assert proc is not None
        _bare(self.server).shutdown(save=True)
        proc.wait(30)
        self.server.proc = None
        self.server.start()
        return "restart with data"

    def heal(self) -> None:
        if self.server.proc is None:
            self.server.start()

    def client(self) -> Any:
        return self.server.client()
