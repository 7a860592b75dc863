"""`make benchmark-serving`'s script runs end to end (real servers, tiny request count) and
writes a report that checks the numbers against the targets; the benchmark scripts' expected
failures (no champion, a bundle failing its checksum, no redis-server, ports taken) end in one
line and exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from servingkit import REPO, server_env

pytestmark = [pytest.mark.integration]

SCRIPTS = ("benchmark_serving.py", "benchmark_chaos.py")


@pytest.mark.slow
def test_benchmark_script_writes_report_with_target_checks(bundle_dir, tmp_path):
    out = tmp_path / "reports"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "benchmark_serving.py"),
        "--model-dir",
        str(bundle_dir),
        "--requests",
        "40",
        "--configs",
        "predictor,transformer_grpc",
        "--feature-source",
        "bundle",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=server_env(RANKER_COMPILE_DIR=tmp_path / "compiled"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "serving.json").read_text())
    assert set(rep["results"]) == {"predictor", "transformer_grpc"}
    for r in rep["results"].values():
        assert r["c1"]["errors"] == r["c8"]["errors"] == 0 and r["c1"]["p50_ms"] > 0 and r["c8"]["rps"] > 0
    grpc = rep["targets"]["transformer_grpc"]
    assert grpc["checks"]["c1_p50_ms"][0] == rep["results"]["transformer_grpc"]["c1"]["p50_ms"]
    assert grpc["met"] == all(ok for _, ok in grpc["checks"].values())
    assert (
        rep["serving_setup"]["ranker_backend"] == "compiled"
        and rep["in_process_engine_no_memo_ms"]["total"]["p50_ms"] > 0
    )
    md = (out / "serving.md").read_text()
    assert "gRPC V2 hop" in md and "Targets" in md


@pytest.mark.slow
def test_chaos_script_runs_every_phase_and_reports_the_targets(bundle_dir, tmp_path):
    """`make benchmark-chaos` on a short schedule: Redis killed, restarted empty, predictor
    killed; the report holds every phase and its checks (the targets themselves are measured
    by the full run, not asserted on a shared CI machine), and no answer is a 5xx."""
    out = tmp_path / "reports"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark_chaos.py"), "--model-dir", str(bundle_dir),
           "--seconds", "16", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=server_env(RANKER_COMPILE_DIR=tmp_path / "compiled"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "chaos.json").read_text())
    assert list(rep["phases"]) == ["steady", "redis_down", "redis_back_empty", "predictor_down"]
    assert all(p["requests"] > 0 for p in rep["phases"].values())
    assert rep["checks"]["no_5xx"] == [0, True]
    assert rep["checks"]["predictor_down_flagged"][1] is True, rep["checks"]
    assert "redis_down" in rep["phases"]["redis_down"]["outcomes"] or "feature_store_down" in \
        rep["phases"]["redis_down"]["outcomes"]
    assert rep["met"] == all(ok for _, ok in rep["checks"].values()) and (proc.returncode == 0) == rep["met"]
    assert "| redis_down |" in (out / "chaos.md").read_text()


def run_script(script, tmp_path, *args, **env):
    """The script with a private, empty registry (RUNS_DIR, MLFLOW_TRACKING_URI in ``tmp_path``),
    no MODEL_DIR and no REDIS_URL."""
    full = {**os.environ, "RUNS_DIR": str(tmp_path / "runs"), "PYTHONUNBUFFERED": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **env}
    for k in ("MODEL_DIR", "REDIS_URL"):
        full.pop(k, None)
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), "--out", str(tmp_path / "reports"),
                           *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=180)


def fake_bundle(path, files: dict[str, bytes], corrupt: str | None = None):
    """A directory that reads as a bundle manifest listing ``files`` with their sha256 (``corrupt``:
    that file's listed digest is wrong)."""
    from recsys.artifacts.bundle import FORMAT_VERSION, MANIFEST

    path.mkdir()
    digests = {}
    for name, data in files.items():
        (path / name).write_bytes(data)
        digests[name] = hashlib.sha256(data + (b"x" if name == corrupt else b"")).hexdigest()
    (path / MANIFEST).write_text(json.dumps({"format_version": FORMAT_VERSION, "version": "fake", "files": digests}))
    return path


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_champion_and_no_model_dir_is_one_line(script, tmp_path):
    from test_serving_cli import one_error_line

    line = one_error_line(run_script(script, tmp_path))
    assert "models:/recommender@champion" in line and "MODEL_DIR" in line, line
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_bundle_failing_its_checksum_is_one_line(script, tmp_path):
    from test_serving_cli import one_error_line

    bundle = fake_bundle(tmp_path / "bundle", {"ranker.txt": b"tree\n"}, corrupt="ranker.txt")
    line = one_error_line(run_script(script, tmp_path, "--model-dir", str(bundle)))
    assert "ranker.txt does not match its sha256" in line and "MODEL_DIR" in line, line


def test_chaos_without_redis_server_is_one_line(tmp_path):
    from test_serving_cli import one_error_line

    bundle = fake_bundle(tmp_path / "bundle", {"ranker.txt": b"tree\n"})
    (tmp_path / "empty-path").mkdir()
    proc = run_script("benchmark_chaos.py", tmp_path, "--model-dir", str(bundle), PATH=str(tmp_path / "empty-path"))
    line = one_error_line(proc)
    assert "no redis-server on PATH" in line and "set PATH" in line, line


@pytest.fixture
def scripts_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))


def test_chaos_redis_port_taken_is_a_setup_error(scripts_path, tmp_path):
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    from benchmark_chaos import RedisProcess
    from benchmark_serving import SetupError

    with socket.socket() as held:  # listens, never answers: neither binds nor pings through
        held.bind(("127.0.0.1", 0))
        held.listen(8)
        r = RedisProcess(tmp_path)
        r.port = held.getsockname()[1]
        with pytest.raises(SetupError, match=rf"port {r.port} in use; free it"):
            r.start()
    assert r.proc.poll() is not None  # nothing left running


def test_a_server_that_exits_at_start_is_a_setup_error_with_its_own_line(scripts_path, tmp_path):
    from benchmark_serving import SetupError, start

    fake = tmp_path / "fake_server.py"
    fake.write_text("import sys\nprint('error: no model behind models:/x@champion; set MODEL_DIR', file=sys.stderr)"
                    "\nsys.exit(2)\n")
    with pytest.raises(SetupError) as err:
        start([str(fake)], dict(os.environ), tmp_path / "fake.log", timeout=30)
    msg = str(err.value)
    assert "exited at start (exit 2): no model behind models:/x@champion; set MODEL_DIR" in msg
    assert str(tmp_path / "fake.log") in msg


def test_ports_taken_twice_is_a_setup_error_after_one_retry(scripts_path, tmp_path):
    from benchmark_serving import SetupError, start

    fake = tmp_path / "fake_server.py"
    fake.write_text(f"import sys\nopen({str(tmp_path / 'tries')!r}, 'a').write('x')\n"
                    "print('ERROR: [Errno 98] error while attempting to bind: address already in use')\nsys.exit(1)\n")
    with pytest.raises(SetupError, match="could not bind its ports"):
        start([str(fake)], dict(os.environ), tmp_path / "fake.log", timeout=30)
    assert (tmp_path / "tries").read_text() == "xx"
