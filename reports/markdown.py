"""``report.md`` for a run folder, rendered only from ``results.csv``, ``run.json`` and stored examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.results import ResultStore
from harness.transport import cipher_transport, describe
from reports.figures import ciphertext_curve_figure, examples_figure, ssim_boxplots, tradeoff_figure
from reports.findings import findings
from reports.published import reported_vs_measured
from reports.paper import LATEX_PACKAGES, PaperTable, html_page, paper_tables, to_latex
from reports.verdicts import IDENTIFICATION_LEAK, MIN_IMAGES_RESISTS, is_identity
from reports.tables import (
    accuracy_table,
    curve_table,
    extra_metrics_table,
    failures_table,
    key_space_table,
    ordered_ciphers,
    security_table,
    verdict_table,
)

REPORT_FILE = "report.md"
FIGURES_DIR = "figures"


def _table(headers: list[str], body: list[list[str]]) -> str:
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) if body else "_no results yet_"


def _split_lines(run: dict[str, Any]) -> list[str]:
    """Images per split as loaded (run.json's ``split_sizes``), else as configured (older runs)."""
    config = run["config"]
    sizes = run.get("split_sizes")
    disjoint = "(the attacker's images are disjoint from the victim's; the last `known_pairs` test images are kpa's pool)"
    if not sizes:
        return [f"- images per split: train {config['n_train'] or 'all'}, test {config['n_test'] or 'all'}, "
                f"attacker {config['n_attacker'] or 'all'} {disjoint}"]
    return [
        f"- `{d}` images per split as loaded: "
        + ", ".join(f"{split} {'?' if counts[split] is None else counts[split]}" for split in ("train", "test", "attacker"))
        + f" {disjoint}"
        for d, counts in sizes.items()
    ]


def _protocol(run: dict[str, Any]) -> str:
    config = run["config"]
    cipher_rows = [
        [name, "x".join(map(str, info["image_size"])), str(info["block_size"]), str((config["ciphers"].get(name) or {}).get("key_condition", "same_key")),
         describe(cipher_transport(config, name))]
        for name, info in sorted(run.get("key_spaces", {}).items())
    ]
    lines = [
        f"- preset `{config['preset']}`, datasets {', '.join(f'`{d}`' for d in config['datasets'])}, "
        f"images {config['image_size'][0]}x{config['image_size'][1]} (per-cipher sizes below)",
        *_split_lines(run),
        *(f"- adapted to the data (a preset default that did not fit): {line}" for line in run.get("adapted", [])),
        f"- master seed {config['seed']}; victim keys, data, training and attacks use seeds derived from it",
        "- scores up to content-keeping transforms: every restoration is also scored after the one transform (of the 8 "
        "rotations/mirrors x negation x channel orders) that fits the cell's restorations best; verdicts use these",
        f"- security verdict: ✗ when an attack recovers the key exactly, or beats the best content-free baseline (raw "
        f"ciphertext, attacker's mean image, flat mean colour) by more than {config.get('verdict_margin', 0.05)} SSIM at the "
        "lower end of the paired 95% interval *and* identifies images above every baseline's rate (Wilson interval); ✓ only "
        f"when the evidence excludes that (at least {MIN_IMAGES_RESISTS} images, the gain's upper end below the margin, "
        f"identification below {100 * IDENTIFICATION_LEAK:.0f}% or the baselines' rate); ? inconclusive otherwise, with the reason",
        f"- statistical attacks pool the victim's encrypted training set and test images (the provider holds both) and are "
        f"scored on the test images; ciphertext ladder {config.get('ciphertext_ladder')}",
        f"- accuracy: {config.get('accuracy_seeds', 1)} training seed(s) per cell, 95% bootstrap interval over test images",
        "- keys are experiment keys: the master seed below rebuilds every victim key, and the example images are known "
        "plain/cipher pairs; never use a benchmark key for real data",
        f"- device `{run.get('device', '?')}`, torch threads {run.get('torch_threads', '?')}, "
        f"commit `{run.get('git_commit', 'unknown')[:12]}`, scramblebench {run.get('versions', {}).get('scramblebench', '?')}, "
        f"torch {run.get('versions', {}).get('torch', '?')}, timm {run.get('versions', {}).get('timm', '?')}",
    ]
    lines.append("- every row of results.csv carries its cell's `cell_hash`: the record in `cells/` it was compiled from, "
                 "a hash of the settings that cell read and of its code")
    if "wall_s" in run:
        lines.append(f"- wall time {run['wall_s']:.0f} s for {run.get('cells', '?')} cells")
    sections = ["\n".join(lines), _table(["encryption", "image size", "block size", "key condition", "transport to the provider"], cipher_rows)]
    for kind in ("classifiers", "attacks"):
        settings = [[name, ", ".join(f"{k}={v}" for k, v in sorted(values.items()))] for name, values in sorted(config[kind].items())]
        if settings:
            sections.append(_table([kind[:-1], "settings"], settings))
    return "\n\n".join(sections)


TABLES_DIR = "tables"


def write_paper_tables(store: ResultStore, tables: list[PaperTable]) -> None:
    """``tables/<name>.tex`` (one float per table), ``tables.tex`` (all of them, in order, for one
    ``\\input``) and ``tables.html`` (styled) beside report.md, from the same cells (private files)."""
    latex = [f"% scramblebench tables; preamble:\n% {LATEX_PACKAGES.replace(chr(10), chr(10) + '% ')}", ""]
    for table in tables:
        text = to_latex(table)
        store.write_bytes(Path(TABLES_DIR) / f"{table.name}.tex", text.encode())
        latex.append(text)
    store.write_bytes("tables.tex", "\n".join(latex).encode())
    store.write_bytes("tables.html", html_page(tables).encode())


def render_report(folder: str | Path) -> Path:
    """Write ``report.md``, ``tables.tex``, ``tables.html`` and the figures into ``folder``; returns the report's path."""
    store = ResultStore(folder)
    frame, run, per_image = store.load(), store.read_run(), store.load_per_image()
    store.check_writable()  # a read-only folder is one clear error, before any work
    config = run["config"]
    figures = store.folder / FIGURES_DIR
    write_paper_tables(store, paper_tables(frame, per_image, run))
    parts = [
        "# scramblebench report",
        "How much accuracy each learnable image cipher costs, and how much of the image attackers restore.\n"
        "Generated from `results.csv`, `per_image.csv` and `run.json` in this folder; rerender with `scramblebench report DIR`. "
        "The main tables are also in `tables/<name>.tex` (one LaTeX float each; `tables.tex` holds them all; "
        "booktabs, siunitx, amssymb) and `tables.html`.",
        "## Accuracy (the seed's Table I)",
        _table(*accuracy_table(frame, per_image, run)),
        "## Security",
        "Content-free baselines sit beside the attacks: `none` (the raw ciphertext), `mean_image` (the attacker's mean "
        "image) and `mean_colour` (a flat image of each ciphertext's mean colour). An attack restores only where it beats "
        "the best of them and identifies the images (see Protocol).",
    ]
    for dataset in config["datasets"]:
        parts += [f"### {dataset}: verdicts",
                  "✗ restores, ✓ resists, ? inconclusive (the reason follows). Scores are symmetry-invariant: taken after the "
                  "rotation, mirror, negation or channel order that fits the restorations best (column *transform*); raw SSIM beside.",
                  _table(*verdict_table(frame, per_image, run, dataset))]
        parts += [f"### {dataset}: mean SSIM up to content-keeping transforms [95% interval]",
                  "What the verdicts use: a mirrored or negated exact restoration scores 1.",
                  _table(*security_table(frame, run, dataset, "ssim_invariant"))]
        parts += [f"### {dataset}: mean SSIM [95% interval]", "Raw signed SSIM (scikit-image defaults).", _table(*security_table(frame, run, dataset))]
        parts += [f"### {dataset}: mean \\|SSIM\\|", "As the field's plots show it (an inverted restoration counts).",
                  _table(*security_table(frame, run, dataset, "abs_ssim"))]
        parts += [f"### {dataset}: top-1 identification (%)",
                  "Share of restorations whose most similar evaluated plain image (grayscale correlation) is their own; chance is 1/N.",
                  _table(*security_table(frame, run, dataset, "identification", scale=100, digits=1))]
        parts += [f"### {dataset}: mean PSNR (dB)", _table(*security_table(frame, run, dataset, "psnr", digits=1))]
        curves = curve_table(frame, dataset)
        if curves[1]:
            parts += [f"### {dataset}: SSIM against the number of victim ciphertexts", _table(*curves)]
        extra = extra_metrics_table(frame, dataset)
        if extra[1]:
            parts += ["Attack-specific numbers and notes:", _table(*extra)]
    parts += ["## Key spaces", _table(*key_space_table(frame, run))]
    parts += ["## Figures"]
    for dataset in config["datasets"]:
        # the seed's Fig. 4, one figure per cipher: distinct example images, every applicable attack
        for cipher in ordered_ciphers(list(frame[(frame["kind"] == "key_space") & (frame["dataset"] == dataset)]["cipher"].unique())):
            if is_identity(run, cipher):
                continue
            grid = examples_figure(store, frame, per_image, run, dataset, cipher, figures / f"examples_{dataset}_{cipher}.png")
            if grid:
                parts.append(f"![{cipher}: plain, encrypted and restored example images ({dataset})]({FIGURES_DIR}/{grid.name})")
        boxes = ssim_boxplots(per_image, run, dataset, figures / f"ssim_boxplots_{dataset}.png")
        if boxes:
            parts.append(f"![per-image SSIM of every attack per cipher ({dataset})]({FIGURES_DIR}/{boxes.name})")
        curves = ciphertext_curve_figure(frame, dataset, figures / f"ciphertext_curves_{dataset}.png")
        if curves:
            parts.append(f"![SSIM of the statistical attacks against the victim ciphertexts they hold ({dataset})]({FIGURES_DIR}/{curves.name})")
        scatter = tradeoff_figure(frame, per_image, run, dataset, figures / f"tradeoff_{dataset}.png")
        if scatter:
            parts.append(f"![accuracy vs strongest attack SSIM ({dataset})]({FIGURES_DIR}/{scatter.name})")
    parts += ["## The seed's findings, checked", "\n".join(f"- {line}" for line in findings(frame, per_image, run))]
    headers, body, summary = reported_vs_measured(frame, per_image, run)
    parts += ["## Reported vs measured", summary]
    if body:
        parts.append(_table(headers, body))
    parts += ["## Protocol", _protocol(run)]
    failures = failures_table(frame)
    if failures[1]:
        parts += ["## Failed cells", _table(*failures)]
    path = store.write_bytes(REPORT_FILE, ("\n\n".join(parts) + "\n").encode())
    store.make_private()  # the figures matplotlib wrote, and the model cache
    return path
