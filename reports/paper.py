"""Paper-ready views of the report's tables: one LaTeX file per table and a styled HTML page.

Each table is a :class:`PaperTable` (cells are text or :class:`reports.tables.Measure`, a number
with its 95% interval).  LaTeX: a ``table`` float with caption and label, booktabs rules, numbers
in siunitx ``S`` columns aligned on the decimal point, the interval beside in ``\\scriptsize``,
verdict symbols with a legend in the caption; a table too wide for one column of a two-column
page becomes ``table*``, and a matrix too wide for the page is split into stacked panels.  It
needs ``booktabs``, ``siunitx`` and ``amssymb``.  HTML: pandas' Styler, intervals that never wrap,
✗/✓/? coloured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd

from reports.tables import (
    Measure,
    accuracy_cell,
    accuracy_cells,
    cost_cell,
    ordered_ciphers,
    row_verdict,
    security_table,
)
from reports.verdicts import (
    CIPHERTEXT_ONLY,
    INCONCLUSIVE,
    KNOWN_PLAINTEXT,
    MODEL_HOLDER,
    RESISTS,
    RESTORES,
    WORDS,
    is_identity,
    model_verdict,
)

LATEX_PACKAGES = "\\usepackage{booktabs}\n\\usepackage{siunitx}\n\\usepackage{amssymb}"
#: widths in pt for the layout decision: one column of a two-column page and the whole text
#: width (the article class at 10pt: 229.5 and 469 pt; IEEEtran and ACM pages are wider)
COLUMN_PT, TEXT_PT = 229.0, 469.0
#: average glyph widths at \small and \scriptsize (Computer Modern), and the column padding
SMALL_PT, SCRIPT_PT, PAD_PT = 4.6, 3.4, 8.0
SYMBOL_LEGEND = "\u2717 an attack restores the images, \u2713 every attack run resists, ? inconclusive, -- no key"
LATEX_TEXT = {"✓": "\\checkmark{}", "✗": "$\\times$", "≤": "$\\le$", "≥": "$\\ge$", "…": "\\dots{}", "–": "--", "−": "$-$",
              "Δ": "$\\Delta$"}
LATEX_ESCAPES = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{", "}": "\\}",
                 "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}
VERDICT_COLOURS = {RESTORES: "#b2182b", RESISTS: "#1a7837", INCONCLUSIVE: "#b35806"}


@dataclass
class PaperTable:
    """One table of the paper: file stem, caption (plain text), headers and cells."""

    name: str
    caption: str
    headers: list[str]
    body: list[list[str]]
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"tab:scramblebench-{self.name}"


def latex_text(text: str) -> str:
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    for symbol, command in LATEX_TEXT.items():
        out = out.replace(symbol, command)
    return out


#: each threat model's column heading
SHORT = {CIPHERTEXT_ONLY: "CO", KNOWN_PLAINTEXT: "KP", MODEL_HOLDER: "MH"}


def _symbol(frame, per_image, run, dataset: str, cipher: str, model: str, classifier: str) -> str:
    if is_identity(run, cipher):
        return "–"
    verdict, _ = row_verdict(frame, per_image, run, dataset, cipher, model, classifier)
    return "n/a" if verdict is None else verdict.symbol


def paper_tables(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any]) -> list[PaperTable]:
    """Table I (accuracy, its cost against plain, verdict symbols), and per dataset the verdicts'
    numbers and the cipher x attack matrices of invariant SSIM, raw SSIM and identification."""
    datasets = run["config"]["datasets"]
    many = len(datasets) > 1
    headers = ["encryption", "network"]
    for d in datasets:
        prefix = f"{d}: " if many else ""
        headers += [f"{prefix}accuracy (%)", f"{prefix}Δ vs plain"]
    for d in datasets:
        prefix = f"{d}: " if many else ""
        headers += [f"{prefix}{short}" for short in SHORT.values()]
    body, derived = [], False
    for cipher, classifier in accuracy_cells(frame):
        line = [cipher, classifier]
        for d in datasets:
            cost = cost_cell(per_image, d, cipher, classifier)
            derived |= isinstance(cost, Measure) and bool(cost.note)
            line += [accuracy_cell(frame, d, cipher, classifier), "--" if cost == "reference" else cost]
        for d in datasets:
            line += [_symbol(frame, per_image, run, d, cipher, m, classifier) for m in SHORT]
        body.append(line)
    notes = ["Δ: accuracy change in points against plain images with the same network, paired bootstrap 95% interval "
             "over the test images"]
    if derived:
        notes.append("† a classifier derived from a plain-trained network without retraining, compared with that network's plain cell")
    tables = [PaperTable(
        "accuracy",
        f"Test accuracy [95% interval] and security verdicts (the seed's Table I). CO: ciphertext-only attacks, "
        f"KP: known-plaintext attacks, MH: model-holder attacks (the provider's model); {SYMBOL_LEGEND}; "
        f"n/a no attack of that threat model applies.",
        headers, body, notes)]
    for d in datasets:
        rows = []
        for cipher in ordered_ciphers(list(frame[(frame["kind"] == "security") & (frame["dataset"] == d)]["cipher"].unique())):
            if is_identity(run, cipher):
                continue
            for model, short in SHORT.items():
                verdict = model_verdict(frame, per_image, run, d, cipher, model)
                if verdict is None:
                    continue
                j = verdict.deciding
                rows.append([cipher, short, j.attack, Measure(j.ssim), Measure(j.gain, j.gain_low, j.gain_high, signed=True),
                             Measure(100 * j.identification, 100 * j.identification_low, 100 * j.identification_high, digits=1),
                             verdict.symbol])
        tables.append(PaperTable(
            f"verdicts_{d}",
            f"Security verdicts on {d}: per cipher and threat model (CO ciphertext-only, KP known-plaintext, MH model-holder) "
            f"the deciding attack, its symmetry-invariant SSIM, its SSIM gain over the best content-free baseline and the share "
            f"of images it identifies, with 95% intervals; {SYMBOL_LEGEND}. The reasons are in report.md.",
            ["encryption", "threat", "attack", "SSIM", "gain", "identified (%)", "verdict"], rows))
        for metric, what, scale, digits in (("ssim_invariant", "mean symmetry-invariant SSIM", 1.0, 3), ("ssim", "mean SSIM", 1.0, 3),
                                            ("identification", "top-1 identification (%)", 100.0, 1)):
            headers, rows = security_table(frame, run, d, metric, scale=scale, digits=digits)
            headers = ["encryption", *[h.replace(" (raw ciphertext)", "") for h in headers[1:]]]
            tables.append(PaperTable(
                f"{metric}_{d}",
                f"{what[0].upper()}{what[1:]} of the restorations on {d} [95% interval]; the columns none, mean_image and "
                f"mean_colour are content-free baselines (none: the raw ciphertext).",
                headers, rows))
    # a run without a metric (e.g. one made before invariant scores) gets no empty table
    return [t for t in tables if any(isinstance(cell, Measure) for line in t.body for cell in line)]


# ---------------------------------------------------------------- LaTeX


@dataclass
class _Column:
    header: str
    numeric: bool
    interval: bool
    table_format: str
    width: float


def _columns(table: PaperTable) -> list[_Column]:
    columns = []
    for c, header in enumerate(table.headers):
        cells = [line[c] for line in table.body]
        measures = [m for m in cells if isinstance(m, Measure) and not math.isnan(m.value)]
        if not measures:
            width = max(len(str(x)) for x in [header, *cells]) * SMALL_PT + PAD_PT
            columns.append(_Column(header, False, False, "", width))
            continue
        numbers = [n for m in measures for n in (m.value,)]
        digits = max(m.digits for m in measures)
        whole = max(len(str(int(abs(n)))) for n in numbers)
        sign = "+" if any(m.signed or m.value < 0 for m in measures) else ""
        interval = any(m.has_interval for m in measures)
        span = max((len(_interval_text(m)) for m in measures if m.has_interval), default=0)
        width = max((whole + digits + 2) * SMALL_PT + PAD_PT + span * SCRIPT_PT, len(header) * SMALL_PT + PAD_PT)
        columns.append(_Column(header, True, interval, f"{sign}{whole}.{digits}", width))
    return columns


def _interval_text(m: Measure) -> str:
    return f"[{m.format(m.low)}, {m.format(m.high)}]" + ("†" if m.note else "")


def _latex_cell(cell: Any, column: _Column) -> list[str]:
    if not column.numeric:
        return [latex_text(cell)]
    if isinstance(cell, Measure) and not math.isnan(cell.value):
        value = [f"{cell.value:{'+' if cell.signed else ''}.{cell.digits}f}"]
        if column.interval:
            mark = "$^\\dagger$" if cell.note else ""
            text = f"{{\\scriptsize$[{cell.format(cell.low)}, {cell.format(cell.high)}]$}}{mark}" if cell.has_interval else mark
            value.append(text)
        return value
    return [f"{{{latex_text(cell)}}}"] + ([""] if column.interval else [])


def _tabular(table: PaperTable, columns: list[_Column], keep: list[int]) -> list[str]:
    spec, head = [], []
    for c in keep:
        column = columns[c]
        if column.numeric:
            spec.append(f"S[table-format={column.table_format}{',retain-explicit-plus' if '+' in column.table_format else ''}]" + ("@{\\,}l" if column.interval else ""))
            head.append(f"\\multicolumn{{2}}{{c}}{{{latex_text(column.header)}}}" if column.interval else f"{{{latex_text(column.header)}}}")
        else:
            spec.append("l")
            head.append(latex_text(column.header))
    lines = [f"\\begin{{tabular}}{{{''.join(spec)}}}", "\\toprule", " & ".join(head) + " \\\\", "\\midrule"]
    for line in table.body:
        lines.append(" & ".join(part for c in keep for part in _latex_cell(line[c], columns[c])) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return lines


def _panels(columns: list[_Column], limit: float) -> list[list[int]]:
    """Column groups (the first column repeated) each at most ``limit`` wide."""
    first, panels, current, width = columns[0].width, [], [], columns[0].width
    for c in range(1, len(columns)):
        if current and width + columns[c].width > limit:
            panels.append([0, *current])
            current, width = [], first
        current.append(c)
        width += columns[c].width
    panels.append([0, *current])
    return panels


def to_latex(table: PaperTable) -> str:
    """One ``table`` (or ``table*``) float with caption, label and aligned numeric columns."""
    columns = _columns(table)
    width = sum(c.width for c in columns)
    wide = width > COLUMN_PT
    panels = _panels(columns, TEXT_PT) if width > TEXT_PT else [list(range(len(columns)))]
    env = "table*" if wide else "table"
    caption = table.caption + "".join(f" {note}." for note in table.notes)
    if wide:
        caption += " (Spans both columns of a two-column page" + (f"; {len(panels)} panels, the first column repeated" if len(panels) > 1 else "") + ".)"
    lines = [f"% scramblebench: {table.name} (needs booktabs, siunitx, amssymb)", f"\\begin{{{env}}}[tbp]", "\\centering",
             "\\small", "\\setlength{\\tabcolsep}{4pt}", f"\\caption{{{_caption_text(caption)}}}", f"\\label{{{table.label}}}"]
    for i, keep in enumerate(panels):
        if i:
            lines.append("\\par\\medskip")
        lines += _tabular(table, columns, keep)
    lines.append(f"\\end{{{env}}}")
    return "\n".join(lines) + "\n"


def _caption_text(caption: str) -> str:
    return latex_text(caption).replace("†", "$^\\dagger$")


def latex_document(tables: list[PaperTable]) -> str:
    """A two-column test document that inputs every table (what the compile check builds)."""
    body = "\n".join(f"\\input{{tables/{t.name}.tex}}\n\\clearpage" for t in tables)
    return (f"\\documentclass[twocolumn]{{article}}\n{LATEX_PACKAGES}\n\\begin{{document}}\n{body}\n\\end{{document}}\n")


# ---------------------------------------------------------------- HTML


def _html_cell(cell: Any) -> str:
    if isinstance(cell, Measure) and not math.isnan(cell.value):
        text = escape(cell.format(cell.value))
        if cell.has_interval:
            text += f" <span class='ci'>[{escape(cell.format(cell.low))},&nbsp;{escape(cell.format(cell.high))}]</span>"
        return text + (f" <span class='note'>{escape(cell.note)}</span>" if cell.note else "")
    return escape(str(cell))


def _html_style(cell: str) -> str:
    text = str(cell)
    symbol = text[:1] if text[:1] in VERDICT_COLOURS and (len(text) == 1 or text[1] == " ") else None
    if symbol:
        return f"color: {VERDICT_COLOURS[symbol]}; font-weight: bold; text-align: center"
    return "white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums" if isinstance(cell, Measure) else ""


def to_html(table: PaperTable) -> str:
    frame = pd.DataFrame(table.body, columns=table.headers, dtype=object)
    styler = frame.style.map(_html_style).format(_html_cell).hide(axis="index")
    styler = styler.set_uuid(table.name).set_caption(escape(table.caption)).set_table_attributes("class='sb'")
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in table.notes)
    return styler.to_html() + notes


HTML_HEAD = """<!doctype html>
<meta charset='utf-8'>
<title>scramblebench tables</title>
<style>
table.sb { border-collapse: collapse; margin: 1em 0; font-size: 90%; }
table.sb th, table.sb td { padding: 2px 8px; border-bottom: 1px solid #ddd; }
table.sb caption { caption-side: top; text-align: left; max-width: 60em; padding-bottom: 4px; }
span.ci { color: #555; font-size: 85%; white-space: nowrap; }
p.note { font-size: 85%; color: #444; }
</style>"""


def html_page(tables: list[PaperTable]) -> str:
    legend = (f"<p>Verdicts: <b style='color:{VERDICT_COLOURS[RESTORES]}'>✗</b> {WORDS[RESTORES]}, "
              f"<b style='color:{VERDICT_COLOURS[RESISTS]}'>✓</b> {WORDS[RESISTS]}, "
              f"<b style='color:{VERDICT_COLOURS[INCONCLUSIVE]}'>?</b> {WORDS[INCONCLUSIVE]}.</p>")
    return "\n".join([HTML_HEAD, legend, *(f"<h2>{escape(t.name)}</h2>\n{to_html(t)}" for t in tables)]) + "\n"
