"""A killed or terminated driver leaves no worker behind (issue 20 item 3), with real signals and
real processes: SIGKILL of the driver (the OOM killer, a Slurm kill) and SIGTERM (finishes like Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start(tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    config = tmp_path / "slow.yaml"  # enough work that both workers are busy when the signal comes
    config.write_text("n_train: 300\nn_test: 100\nn_attacker: 100\nimage_size: [32, 32]\nknown_pairs: 8\n"
                      "attacks: {itn: {epochs: 50, batch_size: 16}}\n")
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bench.py"), "--config", str(config), "--ciphers", "le,etc", "--attacks", "itn",
         "--kinds", "security", "--workers", "2", "--progress", "none", "--out", str(tmp_path / "run")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = {pid for pid in _children(driver.pid) if b"spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_bytes()}
    assert len(workers) >= 2, "the driver did not start its two workers"
    time.sleep(2)  # let them pick up cells
    return driver, _children(driver.pid)


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_sigkill_of_the_driver_takes_its_workers_with_it(tmp_path: Path) -> None:
    driver, children = _start(tmp_path)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not _gone_within(children, 15), "workers or the resource tracker outlived a SIGKILL-ed driver"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_sigterm_finishes_like_ctrl_c(tmp_path: Path) -> None:
    driver, children = _start(tmp_path)
    driver.send_signal(signal.SIGTERM)
    code = driver.wait(timeout=60)
    assert code == 130 and "interrupted" in driver.stderr.read()
    assert not _gone_within(children, 15), "workers outlived a SIGTERM-ed driver"


CRASHING_PLUGIN = '''
import os

from ciphers.base import Traits
from ciphers.plain import PlainCipher


class CrashingCipher(PlainCipher):
    """A plugin whose encrypt kills its process (as a segfault in native code would)."""

    traits = Traits(keystream="xor")

    def _encrypt(self, images, image_ids):
        os._exit(3)
'''


@pytest.mark.parametrize(("workers", "kinds", "attacks"), [("1", "security", "none"), ("2", "key_space,security", "none,mean_colour")])
def test_a_plugin_that_kills_its_worker_is_one_failed_cell(tmp_path: Path, workers: str, kinds: str, attacks: str) -> None:
    """Issue 20 item 1: with --workers 2, and with the default --workers 1 (one worker process), a
    worker's death is one failed cell with its reason; the other cells are computed and the report
    is written (exit 1, not a BrokenProcessPool traceback, nor the driver dying with no record)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "crashing_plugin.py").write_text(CRASHING_PLUGIN)
    info = site / "crashing_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crashing-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[scramblebench.ciphers]\ncrashing = crashing_plugin:CrashingCipher\n")
    config = tmp_path / "tiny.yaml"
    config.write_text("n_train: 20\nn_test: 20\nn_attacker: 10\nimage_size: [16, 16]\nknown_pairs: 4\nciphertext_ladder: []\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "--config", str(config), "--ciphers", "plain,crashing",
         "--attacks", attacks, "--kinds", kinds, "--workers", workers, "--progress", "none",
         "--out", str(tmp_path / "run")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and (tmp_path / "run" / "report.md").exists()
    results = (tmp_path / "run" / "results.csv").read_text()
    failed = [line for line in results.splitlines() if ",failed," in line]
    assert failed and all(",crashing," in line and "worker process died" in line for line in failed)
    ok = {(line.split(",")[0], line.split(",")[4]) for line in results.splitlines() if ",plain," in line and ",ok," in line}
    expected = {("key_space", "")} if "key_space" in kinds else set()
    assert ok == expected | {("security", attack) for attack in attacks.split(",")}  # plain's cells all ran
