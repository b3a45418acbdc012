"""ESCALATOR_REDIS_CLUSTER=true: the service on a real three-master Redis Cluster made from
redis-server processes on loopback ports (no replicas), torn down afterwards."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from redis.crc import key_slot
from support.servers import (
    REDIS_CLI,
    RedisServer,
    free_cluster_port,
    needs_redis_cluster_tools,
    wait_for,
)

from escalator.app import create_app
from escalator.config import Config, ConfigError
from escalator.decisionlog import STREAM_KEY
from escalator.http.services import EXTENSION
from escalator.state.codec import turn_signature, unpack_conversation, unpack_decision
from escalator.state.store import conversation_key


def test_cluster_mode_needs_a_tcp_url() -> None:
    with pytest.raises(ConfigError, match="ESCALATOR_REDIS_CLUSTER=true needs"):
        Config.from_env({"ESCALATOR_REDIS_CLUSTER": "true"})
    with pytest.raises(ConfigError, match="ESCALATOR_REDIS_CLUSTER=true needs"):
        Config.from_env({"ESCALATOR_REDIS_CLUSTER": "true",
                         "ESCALATOR_REDIS_URL": "unix:///tmp/redis.sock"})
    config = Config.from_env({"ESCALATOR_REDIS_CLUSTER": "true",
                              "ESCALATOR_REDIS_URL": "redis://10.0.0.7:6379"})
    assert config.redis_cluster and config.redis_url == "redis://10.0.0.7:6379"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """Three masters sharing the 16384 slots; yields the servers (one URL is enough)."""
    folder = tmp_path_factory.mktemp("redis-cluster")
    nodes = [RedisServer(folder / f"node-{i}", free_cluster_port(), "--cluster-enabled", "yes",
                         "--cluster-config-file", "nodes.conf",
                         "--cluster-node-timeout", "5000") for i in range(3)]
    try:
        for node in nodes:
            node.start()
        assert REDIS_CLI is not None
        subprocess.run([REDIS_CLI, "--cluster", "create",
                        *(f"127.0.0.1:{node.port}" for node in nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)

        def ready() -> bool:
            for node in nodes:
                client = node.client()
                try:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
                finally:
                    client.close()
            return True

        wait_for(ready, 30, "cluster_state:ok on every node", interval=0.1)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def app(cluster: list[RedisServer]) -> Iterator[Flask]:
    application = create_app(Config(redis_url=cluster[1].url, redis_cluster=True, env="test",
                                    decision_log="redis"))
    yield application
    application.extensions[EXTENSION].close()


def owner(cluster: list[RedisServer], key: str) -> RedisServer:
    """The node serving key's slot."""
    client = cluster[0].client()
    try:
        slots = client.cluster("slots")
    finally:
        client.close()
    slot = key_slot(key.encode())
    ports = {int(entry[2][1]) for entry in slots if entry[0] <= slot <= entry[1]}
    [port] = ports
    return next(node for node in cluster if node.port == port)


def turn(client: FlaskClient, cid: str, turn_id: str, text: str) -> dict[str, Any]:
    response = client.post(f"/v1/conversations/{cid}/turns",
                           json={"turn_id": turn_id, "message": {"text": text}})
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    assert body["degraded"] is False
    return body


@pytest.mark.slow
@needs_redis_cluster_tools
def test_conversations_on_a_three_master_cluster(app: Flask, cluster: list[RedisServer]) -> None:
    client = app.test_client()
    cids = [f"cluster-{i}" for i in range(12)]
    homes = {owner(cluster, conversation_key(cid)).port for cid in cids}
    assert len(homes) == 3  # the conversations really are spread over the masters
    stream = redis.RedisCluster.from_url(cluster[0].url)
    logged_before = stream.xlen(STREAM_KEY) if stream.exists(STREAM_KEY) else 0
    decided = 0

    for cid in cids:
        for n in range(1, 4):
            assert turn(client, cid, f"t-{n}", f"where is my parcel? day {n}")["turn_index"] == n
            decided += 1
        # The conversation's key on the node that serves its slot, with the data there.
        node = owner(cluster, conversation_key(cid))
        raw = node.client()
        value = raw.get(conversation_key(cid))
        assert raw.exists(conversation_key(cid)) == 1
        raw.close()
        assert value is not None
        stored = unpack_conversation(value)
        assert stored.version == 3
        assert stored.state.turn_index == 3
        assert stored.turns[1].partition(".")[0] == turn_signature("t-2")
        assert unpack_decision(stored.decisions[1])["turn_index"] == 2

    # A retried turn gets its stored decision and changes nothing.
    first = turn(client, cids[0], "t-4", "I want to talk to a person")
    assert first["decision"] == "route_to_human"
    decided += 1
    retry = turn(client, cids[0], "t-4", "I want to talk to a person")
    assert retry["replayed"] is True and retry["decision_id"] == first["decision_id"]
    sticky = turn(client, cids[0], "t-5", "hello?")
    decided += 1
    assert sticky["decision"] == "route_to_human"
    assert sticky["reasons"][0]["rule"] == "handoff-in-progress"

    # An agent hands it back.
    released = client.post(f"/v1/conversations/{cids[0]}/release")
    assert released.status_code == 200
    assert released.get_json()["escalated"] is False
    assert released.get_json()["turn_index"] == 5
    after = turn(client, cids[0], "t-6", "thanks, and can I pay by card?")
    decided += 1
    assert after["turn_index"] == 6 and after["decision"] == "keep_with_bot"

    # Erasure removes every key of the conversation.
    assert client.delete(f"/v1/conversations/{cids[0]}").status_code == 204
    assert client.get(f"/v1/conversations/{cids[0]}").status_code == 404
    raw = owner(cluster, conversation_key(cids[0])).client()
    assert raw.exists(conversation_key(cids[0])) == 0
    raw.close()
    assert client.get(f"/v1/conversations/{cids[1]}").get_json()["turn_index"] == 3

    # Every decision made (not the retry) went to the decision-log stream.
    assert stream.xlen(STREAM_KEY) == logged_before + decided
    stream.close()
    ready = client.get("/readyz").get_json()
    assert ready["state_store"] == "ok"


@pytest.mark.slow
@needs_redis_cluster_tools
def test_a_dead_master_degrades_its_turns_quickly(app: Flask, cluster: list[RedisServer]) -> None:
    # Runs last in this module: it kills a node of the module's cluster.
    client = app.test_client()
    cids = [f"cluster-down-{i}" for i in range(9)]
    for cid in cids:
        turn(client, cid, "t-1", "hello")
    homes = {cid: owner(cluster, conversation_key(cid)) for cid in cids}
    victim = homes[cids[0]]
    victim.kill()
    for cid in cids:
        started = time.monotonic()
        response = client.post(f"/v1/conversations/{cid}/turns",
                               json={"turn_id": "t-2", "message": {"text": "hello again"}})
        assert response.status_code == 200
        assert time.monotonic() - started < 1.0
        if homes[cid] is victim:
            assert response.get_json()["degraded"] is True
