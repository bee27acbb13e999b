"""Figures a reviewer accepts: Fig. 4 per cipher with distinct images, applicable attacks only and
the attacker's knowledge; etc_gray's strip at its shape; box plots with medians and n; curves with
distinct markers and the legend outside; the trade-off figure with a reference line per network."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import scramblebench
from harness.results import ResultStore
from reports import figures
from reports.figures import distinct_examples

GOLDEN_RUN = Path(__file__).parent / "golden" / "tiny_run"
TINY = {"n_train": 20, "n_test": 36, "n_attacker": 10, "image_size": [16, 16], "known_pairs": 4, "examples": 6,
        "ciphertext_ladder": [5, 10, 20]}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("figures") / "run"
    scramblebench.benchmark(out, ciphers=["le", "etc_gray", "proposed"], attacks=["none", "mean_image", "mean_colour", "puzzle", "kpa"],
                            kinds=["key_space", "security"], config=TINY)
    return out


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the report saves, kept for inspection."""
    kept: list[Figure] = []
    save = Figure.savefig

    def keep(self: Figure, *args, **kwargs):
        kept.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return kept


def test_distinct_examples_skip_repeats() -> None:
    a, b, c = (np.full((3, 4, 4), v, dtype=np.uint8) for v in (0, 200, 90))
    images = np.stack([a, a, b, a, c, b])
    assert distinct_examples(images, 4) == [0, 2, 4]  # three distinct photographs, repeats left out
    assert distinct_examples(images[:1], 4) == [0]


def test_examples_figure_per_cipher_with_applicable_attacks_and_knowledge(run_folder: Path, drawn: list[Figure]) -> None:
    store = ResultStore(run_folder)
    frame, run, per_image = store.load(), store.read_run(), store.load_per_image()
    assert (frame[(frame["cipher"] == "le") & (frame["attack"] == "puzzle")]["status"] == "n/a").all()
    path = figures.examples_figure(store, frame, per_image, run, "natural", "le", run_folder / "f" / "le.png")
    fig = drawn[-1]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:2] == ["plain", "encrypted"] and "kpa\n(known-plaintext)" in titles
    assert not any(t.startswith("puzzle") for t in titles)  # n/a for le: left out, no "n/a" tile
    assert not any(t.startswith("none") for t in titles)  # the raw ciphertext is the encrypted column
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "n/a" not in texts
    rows = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert len(rows) == 4 and len(set(rows)) == 4  # four distinct example images
    assert path.stat().st_size > 1000
    figures.examples_figure(store, frame, per_image, run, "natural", "proposed", run_folder / "f" / "proposed.png")
    assert "puzzle\n(ciphertext-only)" in [ax.get_title() for ax in drawn[-1].axes]


def test_etc_gray_strip_is_drawn_at_its_shape_and_explained(run_folder: Path, drawn: list[Figure]) -> None:
    store = ResultStore(run_folder)
    frame, run, per_image = store.load(), store.read_run(), store.load_per_image()
    figures.examples_figure(store, frame, per_image, run, "natural", "etc_gray", run_folder / "f" / "gray.png")
    fig = drawn[-1]
    FigureCanvasAgg(fig).draw()
    plain, encrypted = fig.axes[0].get_window_extent(), fig.axes[1].get_window_extent()
    assert encrypted.width == pytest.approx(3 * plain.width, rel=0.05)  # 16 x 48: three times as wide, legible
    assert "grayscale ciphertext of 16 x 48 pixels" in fig._suptitle.get_text()


def test_report_links_one_examples_figure_per_cipher(run_folder: Path) -> None:
    text = (run_folder / "report.md").read_text()
    for cipher in ("le", "etc_gray", "proposed"):
        assert f"figures/examples_natural_{cipher}.png" in text and (run_folder / "figures" / f"examples_natural_{cipher}.png").exists()


def test_boxplots_show_medians_and_n(run_folder: Path, drawn: list[Figure]) -> None:
    store = ResultStore(run_folder)
    figures.ssim_boxplots(store.load_per_image(), store.read_run(), "natural", run_folder / "f" / "box.png")
    ax = drawn[-1].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(re.search(r"\(n=\d+\)$", label) for label in labels)
    medians = [line for line in ax.lines if line.get_color() == "black" and line.get_linewidth() == 1.6]
    assert len(medians) == len(labels)


def test_curves_have_distinct_markers_every_ladder_point_and_the_legend_outside(run_folder: Path, drawn: list[Figure]) -> None:
    store = ResultStore(run_folder)
    frame = store.load()
    figures.ciphertext_curve_figure(frame, "natural", run_folder / "f" / "curves.png")
    fig = drawn[-1]
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata())]
    markers = [line.get_marker() for line in curves]
    assert len(set(markers)) == len(markers) >= 1
    assert all(len(line.get_xdata()) >= 3 for line in curves)
    FigureCanvasAgg(fig).draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # outside the data


def test_tradeoff_has_a_reference_line_per_network_and_draws_derived_classifiers(tmp_path: Path, drawn: list[Figure]) -> None:
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN, run)
    store = ResultStore(run)
    figures.tradeoff_figure(store.load(), store.load_per_image(), store.read_run(), "natural", run / "t.png")
    ax = drawn[-1].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "plain images, vit" in labels and "plain images, resnet18" in labels
    notes = [t.get_text() for t in ax.texts]
    assert "proposed (vit_keyed, +0.0 pts)" in notes and "proposed (vit, -1.7 pts)" in notes and "pe (resnet18, -5.0 pts)" in notes
