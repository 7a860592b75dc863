"""Fixtures of the serving tests; helpers live in servingkit (a unique module name, so test
modules never import another directory's conftest by accident)."""

from __future__ import annotations

import socket
import uuid

import pytest

from servingkit import RedisServer, Stack, start_predictor, start_transformer


@pytest.fixture(scope="session")
def stack(bundle_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    pytest.importorskip("kserve")
    own_redis = RedisServer(tmp)
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # accepts connections, never answers
    prefix = f"test-serving-{uuid.uuid4().hex[:8]}"
    st = Stack()
    st.bundle = bundle_dir
    st.prefix = prefix
    st.own_redis = own_redis
    st.predictor = start_predictor(bundle_dir, tmp, "predictor")
    st.predictor_b = start_predictor(bundle_dir, tmp, "predictor-b")
    common = ["--feature_source", "bundle"]
    st.transformer = start_transformer(bundle_dir, tmp, "transformer", f"127.0.0.1:{st.predictor.http_port}",
                                       [*common, "--cache_prefix", prefix], REDIS_URL="redis://127.0.0.1:6379/0",
                                       EVENT_STREAM=f"{prefix}:events")
    st.transformer_b = start_transformer(
        bundle_dir,
        tmp,
        "transformer-b",
        f"127.0.0.1:{st.predictor_b.http_port}",
        [*common, "--cache_prefix", prefix, "--enable_predictor_health_check"],
        REDIS_URL=own_redis.url,
    )
    st.transformer_slow = start_transformer(bundle_dir, tmp, "transformer-slow", f"127.0.0.1:{hang.getsockname()[1]}",
                                            common, PREDICTOR_TIMEOUT_SECONDS="0.3")
    servers = [st.predictor, st.predictor_b, st.transformer, st.transformer_b, st.transformer_slow]
    try:
        for s in servers:
            s.wait_ready()
        yield st
    finally:
        for s in servers:
            s.stop()
        own_redis.stop()
        hang.close()
        import redis

        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)


