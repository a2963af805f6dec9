"""Real multi-process Redis topologies for tests, on free loopback ports.

:class:`ClusterFixture` runs a Redis Cluster of three masters, each with one
replica (``redis-server --cluster-enabled yes`` plus ``redis-cli --cluster
create``); :class:`SentinelFixture` one master, one replica and three
sentinels. Every process is a :class:`~harness.redis_server.RedisServer`, stopped
by its PID; nothing is persisted.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

import redis

from harness.redis_server import RedisServer, free_port


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class ClusterFixture:
    """Three masters with one replica each; ``url`` is ``redis+cluster://``."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.nodes = [
            RedisServer(
                None,
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "1500",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-replica-validity-factor",
                "0",
                # The bus port is port + 10000 unless set: set a free one.
                "--cluster-port",
                str(free_port()),
            )  # fmt: skip
            for _ in range(masters * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> ClusterFixture:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or "redis-cli"
        subprocess.run(
            [cli, "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for node in self.nodes:
            _until(lambda n=node: self._ok(n), 30, f"cluster state on {node.port}")
        return self

    @staticmethod
    def _ok(node: RedisServer) -> bool:
        info = node.client().cluster("info")
        return bool(info["cluster_state"] == "ok")

    def client(self) -> redis.RedisCluster:
        """A cluster client (decoded replies) for test set-up and checks."""
        live = next(node for node in self.nodes if node.proc is not None)
        return redis.RedisCluster(
            host="127.0.0.1", port=live.port, decode_responses=True
        )

    def master_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot as master right now."""
        client = self.client()
        try:
            node = client.get_node_from_key(key)
            return next(n for n in self.nodes if n.port == node.port)
        finally:
            client.close()

    def wait_healthy(self, seconds: float = 30) -> None:
        """Until every live node reports the cluster ``ok`` (after a failover)."""
        for node in self.nodes:
            if node.proc is not None:
                _until(lambda n=node: self._ok(n), seconds, "cluster recovery")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


class SentinelFixture:
    """One master, one replica, three sentinels watching ``mymaster``."""

    name = "mymaster"

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = RedisServer(None, "--replica-announce-ip", "127.0.0.1")
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}/0"

    def start(self) -> SentinelFixture:
        self.master.start()
        self.replica.extra += ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        _until(self.replica_synced, 20, "the replica")
        for _ in range(3):
            sentinel = RedisServer(None, "--sentinel")
            port = sentinel.port
            sentinel.config = config = f"{sentinel.dir}/sentinel.conf"
            with open(config, "w") as out:
                out.write(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.name} 1000\n"
                    f"sentinel failover-timeout {self.name} 5000\n"
                    f"sentinel parallel-syncs {self.name} 1\n"
                )
            self.sentinels.append(sentinel.start())
        return self

    def replica_synced(self) -> bool:
        """Whether the server that is not the current master replicates it,
        its link up (it holds the master's data)."""
        master = self.current_master() if self.sentinels else self.master.port
        replica = self.replica if master == self.master.port else self.master
        client = redis.Redis(port=replica.port, socket_timeout=2)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return bool(
            info["role"] == "slave"
            and info["master_port"] == master
            and info["master_link_status"] == "up"
        )

    def current_master(self) -> int:
        """Port of the master the sentinels agree on now."""
        client = redis.Redis(port=self.sentinels[0].port, decode_responses=True)
        try:
            _host, port = client.sentinel_get_master_addr_by_name(self.name)
            return int(port)
        finally:
            client.close()

    def cleanup(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.cleanup()
