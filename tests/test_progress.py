"""Progress output: a bar only on a terminal; otherwise one line per finished cell and a heartbeat
at most every N seconds, so a Slurm log is lines, not carriage returns."""

from __future__ import annotations

import io

from harness.run import cli, progress_display
from harness.run.plan import Cell

CELL = Cell("security", "natural", "le", attack="nibble")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_lines_and_a_rate_limited_heartbeat(monkeypatch) -> None:
    clock = iter([0.0, 0.0, 10.0, 61.0, 62.0, 125.0])
    monkeypatch.setattr(progress_display.time, "monotonic", lambda: next(clock))
    log = io.StringIO()
    display = progress_display.ProgressDisplay("auto", total=2, heartbeat=60, stream=log)
    assert display.mode == "plain" and display.bar is None
    update = display.for_cell(CELL)
    for step in range(1, 5):  # at t = 0, 10, 61, 62: only t = 61 is a minute after the first
        update(step, 4, "fitting")
    display.cell_done(CELL, "ok", 125.0)
    display.cell_done(Cell("key_space", "natural", "le"), "cached", 0.0)
    lines = log.getvalue().splitlines()
    assert lines == [
        "  ... le/nibble: fitting 3/4 (61 s)",
        "[1/2] [ok] security: natural / le / nibble in 125 s",
        "[2/2] [cached] key_space: natural / le / key space",
    ]
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar_and_the_flag_wins() -> None:
    assert progress_display.ProgressDisplay("auto", total=1, stream=_Terminal()).mode == "bar"
    assert progress_display.ProgressDisplay("plain", total=1, stream=_Terminal()).mode == "plain"
    assert progress_display.ProgressDisplay("none", total=1, stream=io.StringIO()).for_cell(CELL) is None


def test_own_photographs_run_key_space_and_security_and_accuracy_says_it_needs_labels(tmp_path) -> None:
    import cv2

    from harness.results import ResultStore
    from tests.photos import other_photographs

    photos = tmp_path / "photos"
    photos.mkdir()
    for index, photo in enumerate(other_photographs(16, size=24, seed=2).permute(0, 2, 3, 1).numpy()):
        cv2.imwrite(str(photos / f"{index}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    config = tmp_path / "own.yaml"
    config.write_text("image_size: [16, 16]\nknown_pairs: 2\nexamples: 2\n")
    argv = ["--images", str(photos), "--config", str(config), "--ciphers", "plain,proposed", "--classifiers", "resnet18",
            "--attacks", "none,kpa", "--out", str(tmp_path / "run"), "--progress", "none", "--in-process"]
    assert cli.main(argv, stdout=lambda line: None) == 0
    frame = ResultStore(tmp_path / "run").load()
    accuracy = frame[frame["kind"] == "accuracy"]
    assert set(accuracy["status"]) == {"n/a"} and accuracy["note"].str.contains("no labels").all()
    security = frame[(frame["kind"] == "security") & (frame["metric"] == "ssim")]
    assert (security["status"] == "ok").all() and set(security["n"]) == {8 - 2}  # half of 16 photographs, minus the pair pool


def test_device_names_are_checked(capsys) -> None:
    import pytest
    import torch

    from harness.run.arguments import UsageError, parse_device

    assert parse_device("cpu") == "cpu"
    for bad, message in (("gpu", "auto, cpu, cuda or cuda:N"), ("cuda:x", "auto, cpu, cuda or cuda:N")):
        with pytest.raises(UsageError, match=message):
            parse_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            parse_device("cuda:1")
