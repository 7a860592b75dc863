"""The size and import-cycle checker behind ``make lint`` flags what it should."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "check_shape.py"), *args], cwd=REPO,
                          capture_output=True, text=True)


def test_the_project_passes():
    proc = run("recsys", "predictors")
    assert proc.returncode == 0, proc.stdout


def test_long_functions_big_modules_and_cycles_are_flagged(tmp_path, monkeypatch):
    pkg = REPO / "build" / "shape_probe"
    pkg.mkdir(parents=True, exist_ok=True)
    try:
        (pkg / "__init__.py").write_text("")
        (pkg / "a.py").write_text("from build.shape_probe import b\n\n\ndef f():\n" + "    x = 1\n" * 70)
        (pkg / "b.py").write_text("def g():\n    from build.shape_probe import a\n" + "\n" * 300)
        (pkg / "c.py").write_text("# size: one table\n" + "\n" * 320)
        proc = run("build/shape_probe")
        assert proc.returncode == 1
        assert "a.py:4: function f is 71 lines" in proc.stdout
        assert "b.py: 302 lines" in proc.stdout and "c.py" not in proc.stdout
        assert "import cycle: build.shape_probe.a -> build.shape_probe.b -> build.shape_probe.a" in proc.stdout
    finally:
        import shutil

        shutil.rmtree(pkg)
