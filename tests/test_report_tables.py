"""Paper-ready tables: one LaTeX float per table (caption, label, aligned numbers, legend), a
compiled check when a TeX toolchain is present, styled HTML, and Table I's accuracy cost."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.results import ResultStore
from reports.markdown import render_report
from reports.paper import PaperTable, latex_document, paper_tables, to_html, to_latex
from reports.tables import Measure, accuracy_cost, accuracy_table

GOLDEN_RUN = Path(__file__).parent / "golden" / "tiny_run"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tables") / "run"
    shutil.copytree(GOLDEN_RUN, run)
    render_report(run)
    return run


def test_one_tex_file_per_table_with_caption_label_and_aligned_numbers(rendered: Path) -> None:
    files = sorted((rendered / "tables").glob("*.tex"))
    assert {f.stem for f in files} == {"accuracy", "verdicts_natural", "ssim_natural", "identification_natural"}  # no invariant rows in this older run
    combined = (rendered / "tables.tex").read_text()
    for path in files:
        text = path.read_text()
        assert text.count("\\begin{table") == 1 and "\\caption{" in text and f"\\label{{tab:scramblebench-{path.stem}}}" in text
        assert "S[table-format=" in text and "\\toprule" in text, path.name  # decimal-aligned numeric columns
        assert "✗" not in text and "✓" not in text and "–" not in text  # plain LaTeX symbols only
        assert text in combined
    accuracy = (rendered / "tables" / "accuracy.tex").read_text()
    assert "$\\times$ an attack restores" in accuracy and "\\checkmark{} every attack run resists" in accuracy  # legend
    assert "{\\scriptsize$[3.3, 18.3]$}" in accuracy  # the interval compact, beside its number
    assert "$\\Delta$ vs plain" in accuracy and "$^\\dagger$" in accuracy  # vit_keyed compared with vit's plain cell


def test_wide_tables_span_the_page_or_split_into_panels() -> None:
    narrow = PaperTable("narrow", "A narrow one.", ["cipher", "SSIM"], [["le", Measure(0.5)]])
    assert "\\begin{table}[tbp]" in to_latex(narrow)
    many = PaperTable("wide", "Many attacks.", ["cipher", *[f"attack{i}" for i in range(12)]],
                      [["le", *[Measure(0.5, 0.4, 0.6) for _ in range(12)]]])
    text = to_latex(many)
    assert "\\begin{table*}" in text and "panels" in text and text.count("\\begin{tabular}") > 1


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex: install texlive-latex-recommended and texlive-science to compile the tables")
def test_tables_compile_on_a_two_column_page_without_overfull_boxes(rendered: Path, tmp_path: Path) -> None:
    shutil.copytree(rendered / "tables", tmp_path / "tables")
    frame, run, per_image = (ResultStore(rendered).load(), ResultStore(rendered).read_run(), ResultStore(rendered).load_per_image())
    wide = PaperTable("wide", "A matrix as wide as the quick preset's (14 attacks, long names).", ["encryption", *[f"attack_{i:02d}" for i in range(14)]],
                      [[name, *[Measure(-0.123 + 0.1 * i, -0.2, 0.99) for i in range(14)]] for name in ("etc_gray", "vit_cfe_v2")])
    (tmp_path / "tables" / "wide.tex").write_text(to_latex(wide))
    (tmp_path / "doc.tex").write_text(latex_document([*paper_tables(frame, per_image, run), wide]))
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]


def test_html_is_styled_intervals_do_not_wrap_and_verdicts_are_coloured(rendered: Path) -> None:
    html = (rendered / "tables.html").read_text()
    assert "<style" in html and "white-space: nowrap" in html
    assert "<span class='ci'>[3.3,&nbsp;18.3]</span>" in html  # never wraps inside an interval
    assert "color: #b2182b" in html  # ✗ in red
    assert "<caption>" in html


def test_render_is_deterministic(rendered: Path, tmp_path: Path) -> None:
    again = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN, again)
    render_report(again)
    for name in ("tables.tex", "tables.html", "tables/accuracy.tex"):
        assert (again / name).read_bytes() == (rendered / name).read_bytes(), name


def _per_image(cells: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    rows = [
        {"kind": "accuracy", "dataset": "d", "cipher": cipher, "classifier": net, "attack": "", "key_condition": "same_key",
         "image_id": i, "metric": "correct", "value": float(v)}
        for (cipher, net), values in cells.items() for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_accuracy_cost_is_paired_against_plain_with_the_same_or_base_network() -> None:
    rng = np.random.default_rng(0)
    plain = rng.random(200) < 0.8
    worse = plain.copy()
    worse[:40] = False  # 40 fewer right on the same images
    per_image = _per_image({("plain", "vit"): plain, ("proposed", "vit"): worse, ("proposed", "vit_keyed"): plain,
                            ("plain", "resnet18"): ~plain, ("pe", "resnet18"): ~plain})
    cost, reference = accuracy_cost(per_image, "d", "proposed", "vit")
    assert reference == "vit" and cost.value == pytest.approx(-100 * plain[:40].sum() / plain.size) and cost.high < 0 < -cost.low
    keyed, reference = accuracy_cost(per_image, "d", "proposed", "vit_keyed")
    assert reference == "vit" and keyed.value == keyed.low == keyed.high == 0.0  # identical images right: a zero-width interval
    assert accuracy_cost(per_image, "d", "pe", "resnet18")[0].value == 0.0  # resnet18 against plain resnet18, not vit
    assert accuracy_cost(per_image, "d", "plain", "vit") is None


def test_table_one_has_the_cost_column(rendered: Path) -> None:
    store = ResultStore(rendered)
    headers, body = accuracy_table(store.load(), store.load_per_image(), store.read_run())
    assert "natural change vs plain (points)" in headers
    column = headers.index("natural change vs plain (points)")
    costs = {(line[0], line[1]): line[column] for line in body}
    assert costs[("plain", "vit")] == "reference" and costs[("proposed", "vit_keyed")] == "+0.0 [+0.0, +0.0] (vs vit)"
    assert costs[("proposed", "vit")].startswith("-1.7 [")
