"""docs/plugins.md, walked in a clean virtual environment: scramblebench and the example plugin are
installed as a user would (non-editable), then listed, run through the shipped conformance suites
and used in a run whose provenance names scramblebench's own version, not a checkout's commit.

The new environment gets no packages of its own but scramblebench and the plugin; its
dependencies (torch, ...) come from this test's environment through a path file, so nothing is
downloaded and the test takes seconds, not the minutes of a fresh torch install.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def test_the_plugin_guide_works_from_a_clean_virtual_environment(tmp_path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., not scramblebench
    assert "harness" not in _run([str(python), "-c", "import importlib.util as u; print(u.find_spec('harness'))"], tmp_path)
    # docs/plugins.md: install scramblebench and the separate plugin package
    _run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation",
          str(REPO), str(REPO / "examples" / "channel_swap_plugin")], tmp_path)
    located = _run([str(python), "-c", "import harness; print(harness.__file__)"], tmp_path)
    assert located.startswith(str(site))  # the installed copy, not this checkout
    listing = _run([str(venv / "bin" / "scramblebench"), "list"], tmp_path)
    assert "channel_swap" in listing and "scramblebench-channel-swap" in listing
    suites = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "harness.conformance.plugin",
                   "--pyargs", "harness.conformance", "-k", "channel_swap"], tmp_path)
    assert " passed" in suites.splitlines()[-1] and "failed" not in suites.splitlines()[-1]
    _run([str(venv / "bin" / "scramblebench"), "--ciphers", "channel_swap,plain", "--kinds", "key_space",
          "--out", str(tmp_path / "run"), "--progress", "none"], tmp_path)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["git_commit"] == "not a checkout (installed package)"
    assert run["versions"]["scramblebench"] == "0.1.0" and "channel_swap" in run["plugins"]["cipher"]
