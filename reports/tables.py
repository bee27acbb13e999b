"""The report's tables as plain data, computed only from results rows and run metadata."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.stats import bootstrap_mean_interval
from reports.verdicts import (
    CIPHERTEXT_ONLY,
    MODEL_HOLDER,
    RESTORES,
    THREAT_MODELS,
    ModelVerdict,
    attack_info,
    is_identity,
    model_verdict,
    verdict_text,
)

#: the seed's Table I row order (presentation only: no decision depends on it); others follow alphabetically
CIPHER_ORDER = ("le", "etc", "etc_gray", "ele", "pe", "proposed", "plain")
NONE_ATTACK = "none"


class Measure(str):
    """A number with its optional 95% interval: the markdown text (``45.2 [40.1, 50.3]``) that also
    keeps the numbers, so the LaTeX and HTML views align and style them without parsing text."""

    value: float
    low: float
    high: float
    digits: int
    signed: bool
    note: str

    def __new__(cls, value: float, low: float = math.nan, high: float = math.nan, digits: int = 3, signed: bool = False,
                note: str = "") -> "Measure":
        spec = f"{'+' if signed else ''}.{digits}f"
        text = format(value, spec) + ("" if math.isnan(low) else f" [{format(low, spec)}, {format(high, spec)}]")
        self = super().__new__(cls, f"{text} ({note})" if note else text)
        self.value, self.low, self.high, self.digits, self.signed, self.note = float(value), float(low), float(high), digits, signed, note
        return self

    def format(self, number: float) -> str:
        return format(number, f"{'+' if self.signed else ''}.{self.digits}f")

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)


def ordered_ciphers(names: list[str]) -> list[str]:
    known = [c for c in CIPHER_ORDER if c in names]
    return known + sorted(set(names) - set(known))


def _ok(frame: pd.DataFrame, kind: str, metric: str) -> pd.DataFrame:
    return frame[(frame["kind"] == kind) & (frame["metric"] == metric) & (frame["status"] == "ok")]


def _applicable(frame: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str, reading: str | None = None) -> bool:
    """Whether an attack of threat model ``model`` (reading that model, with ``reading``) applied to the cipher."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher)]
    return any(
        attack_info(run, a).get("threat_model", CIPHERTEXT_ONLY) == model and not attack_info(run, a).get("baseline")
        and (reading is None or reading in attack_info(run, a).get("reads_models", [reading]))
        for a in rows[rows["status"] != "n/a"]["attack"].unique()
    )


def row_verdict(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str,
                classifier: str | None = None) -> tuple[ModelVerdict | None, bool]:
    """One threat model's verdict for a cipher (reports/verdicts.py has the rule) and whether an
    attack of it applies; with ``classifier``, the model-holder verdict is that of the attacks
    reading that network's model (:func:`held_model`)."""
    if model != MODEL_HOLDER or classifier is None:
        return model_verdict(frame, per_image, run, dataset, cipher, model), _applicable(frame, run, dataset, cipher, model)
    reading = held_model(frame, cipher, classifier)
    if reading is None:
        return None, False
    return model_verdict(frame, per_image, run, dataset, cipher, model, reading), _applicable(frame, run, dataset, cipher, model, reading)


def security_verdict(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str,
                     classifier: str | None = None) -> str:
    """The report's ✗/✓/? text for one cipher (and network) and threat model."""
    if is_identity(run, cipher):
        return "–"
    return verdict_text(*row_verdict(frame, per_image, run, dataset, cipher, model, classifier), model)


def held_model(frame: pd.DataFrame, cipher: str, classifier: str) -> str | None:
    """What a Table I network is to a model holder: ``keyed`` for one derived from a plain network
    by a key transform (``vit_keyed``), ``trained`` for the network such a one is derived from,
    trained on the cipher's ciphertexts (``vit`` beside ``vit_keyed``), else None."""
    if plain_base(classifier):
        return "keyed"
    networks = frame[(frame["kind"] == "accuracy") & (frame["cipher"] == cipher)]["classifier"].unique()
    return "trained" if any(plain_base(n) == classifier for n in networks) else None


PLAIN = "plain"


def plain_base(classifier: str) -> str | None:
    """The network a derived classifier was made from without retraining (``vit_keyed`` -> ``vit``),
    from the classifier registry; ``None`` for one trained on ciphertexts or a plugin not installed."""
    from harness.registry import classifiers  # the registry imports the plugins: only when asked

    try:
        return getattr(classifiers.get(classifier), "plain_base", None)
    except KeyError:  # a run made with a plugin this machine lacks: no derived reference
        return None


def _correct(per_image: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> pd.Series | None:
    rows = per_image[(per_image["kind"] == "accuracy") & (per_image["dataset"] == dataset) & (per_image["cipher"] == cipher)
                     & (per_image["classifier"] == classifier) & (per_image["metric"] == "correct")]
    return rows.set_index("image_id")["value"].sort_index() if len(rows) else None


def accuracy_cost(per_image: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> tuple[Measure, str] | None:
    """Accuracy change in points against plain images with the same network (a derived classifier's
    reference is its base network's plain cell), with a paired bootstrap 95% interval over the
    test images both cells classified; ``None`` for a plain cell or when either cell is missing."""
    if cipher == PLAIN:
        return None
    reference = plain_base(classifier) or classifier
    mine, plain = _correct(per_image, dataset, cipher, classifier), _correct(per_image, dataset, PLAIN, reference)
    if mine is None or plain is None:
        return None
    shared = mine.index.intersection(plain.index)
    if shared.empty:
        return None
    delta, low, high = bootstrap_mean_interval(mine.loc[shared].to_numpy() - plain.loc[shared].to_numpy())
    return Measure(100 * delta, 100 * low, 100 * high, digits=1, signed=True), reference


def accuracy_cell(frame: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> Measure | str:
    """Accuracy in % [95% interval], ``failed`` or ``–``."""
    rows = frame[(frame["kind"] == "accuracy") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher) & (frame["classifier"] == classifier)]
    hit = rows[(rows["status"] == "ok") & (rows["metric"] == "accuracy")]
    if len(hit):
        row = hit.iloc[0]
        return Measure(100 * row["value"], 100 * row["ci95_low"], 100 * row["ci95_high"], digits=1)
    return "failed" if (rows["status"] == "failed").any() else "–"


def accuracy_cells(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(cipher, network) pairs with an accuracy result or failure, in Table I order."""
    acc = _ok(frame, "accuracy", "accuracy")
    failed = frame[(frame["kind"] == "accuracy") & (frame["status"] == "failed")]
    cells = pd.concat([acc, failed])[["cipher", "classifier"]].drop_duplicates()
    return [(cipher, classifier) for cipher in ordered_ciphers(list(cells["cipher"].unique()))
            for classifier in sorted(cells[cells["cipher"] == cipher]["classifier"])]


def cost_cell(per_image: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> Measure | str:
    """Table I's cost column: ``-1.2 [-3.0, +0.5]`` (vs ``vit`` where the reference is a base network), or ``–``."""
    if cipher == PLAIN:
        return "reference"
    cost = accuracy_cost(per_image, dataset, cipher, classifier)
    if cost is None:
        return "–"
    measure, reference = cost
    return measure if reference == classifier else Measure(measure.value, measure.low, measure.high, 1, True, note=f"vs {reference}")


def accuracy_table(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The seed's Table I: cipher, network, accuracy [95% interval] and its change against plain
    images with the same network (paired 95% interval) per dataset, security verdicts."""
    datasets = run["config"]["datasets"]
    headers = ["encryption", "network", *[h for d in datasets for h in (f"{d} accuracy (%)", f"{d} change vs plain (points)")],
               "ciphertext-only attacks", "known-plaintext attack", "model-holder attacks"]
    body = []
    for cipher, classifier in accuracy_cells(frame):
        line = [cipher, classifier]
        for dataset in datasets:
            line += [accuracy_cell(frame, dataset, cipher, classifier), cost_cell(per_image, dataset, cipher, classifier)]
        for model in THREAT_MODELS:
            line.append("; ".join(security_verdict(frame, per_image, run, d, cipher, model, classifier) for d in datasets))
        body.append(line)
    return headers, body


def coverage_text(verdict: ModelVerdict) -> str:
    """Beside a ✓ or ?: which attacks ran at what budget, and whether any could recover the key."""
    if verdict.symbol == RESTORES:
        return verdict.reason
    text = f"{verdict.reason}. Attacks run: {', '.join(verdict.coverage)}"
    if not verdict.key_recovery_ran:
        text += "; no key-recovery attack applies to this cipher's traits"
    return text


def verdict_table(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str) -> tuple[list[str], list[list[str]]]:
    """Per cipher and threat model: the deciding attack against the best content-free baseline,
    symmetry-invariant scores beside the raw SSIM, the verdict and why."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset)]
    headers = ["encryption", "threat model", "deciding attack", "SSIM (invariant)", "raw SSIM", "transform", "best baseline (SSIM)",
               "SSIM gain [95%]", "identified (%) [95%]", "baselines identify ≤ (%)", "verdict", "why; coverage"]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        if is_identity(run, cipher):
            continue
        for model in THREAT_MODELS:
            verdict = model_verdict(frame, per_image, run, dataset, cipher, model)
            if verdict is None:
                continue
            j = verdict.deciding
            body.append([
                cipher, model, j.attack, Measure(j.ssim), Measure(j.raw_ssim), j.transform, f"{j.baseline} ({j.baseline_ssim:.3f})",
                Measure(j.gain, j.gain_low, j.gain_high, signed=True),
                Measure(100 * j.identification, 100 * j.identification_low, 100 * j.identification_high, digits=1),
                f"{100 * j.baseline_identification_high:.1f}", verdict.text, coverage_text(verdict),
            ])
    return headers, body


def security_table(
    frame: pd.DataFrame, run: dict[str, Any], dataset: str, metric: str = "ssim", scale: float = 1.0, digits: int = 3
) -> tuple[list[str], list[list[str]]]:
    """Cipher x attack: mean of ``metric`` [95% interval]; baselines first, ``none`` (the raw ciphertext) leading."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset)]
    attack_names = sorted(rows["attack"].unique(), key=lambda a: (a != NONE_ATTACK, not attack_info(run, a).get("baseline"), a))
    headers = ["encryption", *[f"{a} (raw ciphertext)" if a == NONE_ATTACK else a for a in attack_names]]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        line = [cipher]
        for attack in attack_names:
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            ssim_row = cell[cell["metric"] == metric]
            if cell.empty:
                line.append("–")
            elif (cell["status"] == "failed").any():
                line.append("failed")
            elif (cell["status"] == "n/a").any():
                line.append("n/a")
            elif ssim_row.empty:
                line.append("–")
            else:
                row = ssim_row.iloc[0]
                line.append(Measure(scale * row["value"], scale * row["ci95_low"], scale * row["ci95_high"], digits))
        body.append(line)
    return headers, body


def extra_metrics_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """One line per security cell: its attack-specific numbers (e.g. pairs needed) and its note."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["status"] != "failed")]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        for attack in sorted(rows[rows["cipher"] == cipher]["attack"].unique()):
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            extra = cell[~cell["metric"].isin(SCORE_METRICS)]
            numbers = ", ".join(f"{r.metric}={r.value:.4g}" for r in extra.itertuples())
            note = next((n for n in cell["note"] if n), "")
            if numbers or note:
                body.append([cipher, attack, numbers, note])
    return ["encryption", "attack", "attack-specific numbers", "note"], body


#: per-cell scores with tables of their own (everything else is an attack-specific number)
SCORE_METRICS = ("ssim", "abs_ssim", "psnr", "identification", "ssim_vs_ciphertexts", "ssim_invariant", "psnr_invariant",
                 "identification_invariant", "symmetry")


def curve_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Statistical attacks: mean SSIM against the number of victim ciphertexts they saw."""
    rows = _ok(frame, "security", "ssim_vs_ciphertexts")
    rows = rows[rows["dataset"] == dataset]
    counts = sorted({int(n) for n in rows["n"]})
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        for attack in sorted(rows[rows["cipher"] == cipher]["attack"].unique()):
            curve = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            values = {int(r.n): r.value for r in curve.itertuples()}
            body.append([cipher, attack, *[f"{values[c]:.3f}" if c in values else "" for c in counts]])
    return ["encryption", "attack", *[str(c) for c in counts]], body


def key_space_table(frame: pd.DataFrame, run: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = frame[(frame["kind"] == "key_space") & (frame["status"] == "ok")]
    lossy = bool((rows["metric"] == "transport_psnr").any())  # a lossy channel ran: what decrypting what arrived gives
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        cell = rows[rows["cipher"] == cipher]
        value = dict(zip(cell["metric"], cell["value"]))
        info = run.get("key_spaces", {}).get(cipher, {})
        size = "x".join(map(str, info.get("image_size", []))) or "–"
        nominal, effective = value.get("key_space_log2", math.nan), value.get("effective_key_space_log2", math.nan)
        body.append([cipher, size, f"{value.get('block_size', math.nan):.0f}", cell["key_condition"].iloc[0], f"{nominal:.2f}", f"{effective:.2f}", f"2^{math.ceil(nominal - 1e-9):d}" if nominal > 0 else "1"])
        if lossy:
            body[-1].append(f"{value['transport_psnr']:.2f}" if "transport_psnr" in value else "exact")
    headers = ["encryption", "image size", "block size", "key condition", "log2 key space (nominal)", "log2 (effective)", "rounded up"]
    return headers + (["PSNR of decrypt(received), dB"] if lossy else []), body


def failures_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    failed = frame[frame["status"] == "failed"]
    body = [[r.kind, r.dataset, r.cipher, r.classifier or r.attack, r.note] for r in failed.itertuples()]
    return ["kind", "dataset", "encryption", "network / attack", "error"], body
