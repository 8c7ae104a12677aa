"""A three-node Apache Kafka cluster (KRaft) on 127.0.0.1, run from the same jars as ``LocalKafka``.

Production runs Kafka on several brokers with replication, and a broker that dies hands its
partition leaderships to the others. Each node here runs broker and controller in one JVM (KRaft
combined mode) and votes in a static quorum of three, so the cluster survives the loss of any one
node: the controllers keep a majority, and with replication factor 3 and ``min.insync.replicas``
2 every partition keeps accepting ``acks=all`` writes on the two nodes left.

Start the cluster from a thread that outlives it (the main thread, a pytest fixture): each JVM
dies with the thread that started it (see ``evalstream_local.broker.kafka``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from evalstream_local.broker.jars import LocalKafkaError
from evalstream_local.broker.kafka import HOST, LocalKafka, free_port, new_cluster_id

NODES = 3
# What a production cluster of three sets: every partition, internal ones included, on all three
# nodes, and a write acknowledged by two of them before ``acks=all`` returns, so one node may die
# without losing an acknowledged message or stopping writes.
REPLICATION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    # A replica that missed writes while its broker was down may never lead: that would lose them.
    "unclean.leader.election.enable": "false",
}


def _distinct_free_ports(count: int) -> list[int]:
    # The kernel may hand out a port again once its probe socket is closed: draw until distinct.
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class LocalKafkaCluster:
    """Three KRaft nodes (broker and controller each) on 127.0.0.1, node ids 1 to 3.

    Args:
        data_dir: Where each node keeps its configuration, log and data (``node<ID>/``); kept.
        cache_dir: Where the jars are kept; defaults to ``LocalKafka``'s.
        broker_config: Properties added to every node's (after the replication defaults).
        java: The Java 17+ executable.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        cache_dir: Path | None = None,
        broker_config: Mapping[str, str] | None = None,
        java: str = "java",
    ) -> None:
        ports = _distinct_free_ports(2 * NODES)
        clients, controllers = ports[:NODES], ports[NODES:]
        ids = range(1, NODES + 1)
        voters = ",".join(f"{i}@{HOST}:{port}" for i, port in zip(ids, controllers, strict=True))
        cluster_id = new_cluster_id()
        self._nodes = {
            node_id: LocalKafka(
                data_dir / f"node{node_id}",
                client,
                cache_dir=cache_dir,
                broker_config={
                    **REPLICATION,
                    "node.id": str(node_id),
                    "controller.quorum.voters": voters,
                    **(broker_config or {}),
                },
                java=java,
                controller_port=controller,
                cluster_id=cluster_id,
            )
            for node_id, client, controller in zip(ids, clients, controllers, strict=True)
        }
        self._admin_client: AdminClient | None = None

    @property
    def bootstrap(self) -> str:
        """Every node's address, comma-separated: clients find the cluster through any live one."""
        return ",".join(node.bootstrap for node in self._nodes.values())

    @property
    def node_ids(self) -> list[int]:
        """The node ids, which are also the broker ids metadata reports."""
        return list(self._nodes)

    def node(self, node_id: int) -> LocalKafka:
        """The node with id ``node_id``, to kill, pause or restart."""
        return self._nodes[node_id]

    def start(self, timeout: float = 120.0) -> str:
        """Starts every node that is not running, and waits until metadata lists all of them.

        Returns:
            The bootstrap list.

        Raises:
            LocalKafkaError: A node failed to start, or the cluster did not form in time.
        """
        deadline = time.monotonic() + timeout
        try:
            # All launched first: one node alone is no quorum and cannot answer.
            stopped = [node for node in self._nodes.values() if not node.running]
            for node in stopped:
                node.launch(timeout)
            for node in stopped:
                node.wait_ready(max(1.0, deadline - time.monotonic()))
            self._wait_registered(deadline)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        """Stops every node at once (SIGTERM, then SIGKILL after ``timeout``); the data stays.

        At once, because a node stopped last would wait for a controller quorum that is gone.
        """
        with ThreadPoolExecutor(len(self._nodes)) as pool:
            for _ in pool.map(lambda node: node.stop(timeout), self._nodes.values()):
                pass

    def kill(self, node_id: int) -> None:
        """Kills one node with SIGKILL, as a crash would."""
        self._nodes[node_id].kill()

    def leaders(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """Partition -> the broker id leading it now (-1 while none does), from metadata."""
        metadata = self._admin().list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise LocalKafkaError(f"no metadata for {topic}: {metadata.error}")
        return {p: info.leader for p, info in metadata.partitions.items()}

    def fully_replicated(self, *topics: str, timeout: float = 10.0) -> bool:
        """Whether every partition of ``topics`` has a leader and all nodes in sync."""
        try:
            metadata = self._admin().list_topics(timeout=timeout).topics
        except KafkaException:
            return False
        for topic in topics:
            partitions = metadata[topic].partitions if topic in metadata else {}
            if not partitions or any(
                info.leader < 0 or len(info.isrs) < NODES for info in partitions.values()
            ):
                return False
        return True

    def __enter__(self) -> LocalKafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _admin(self) -> AdminClient:
        # One client for every metadata question: it follows the cluster as nodes die and return.
        if self._admin_client is None:
            self._admin_client = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
        return self._admin_client

    def _wait_registered(self, deadline: float) -> None:
        while True:
            try:
                if len(self._admin().list_topics(timeout=2.0).brokers) == NODES:
                    return
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise LocalKafkaError(f"the cluster did not list {NODES} brokers in time")
            time.sleep(0.2)
