"""The verdict rule on real scores: a flat or grey image is never "broken", a true key recovery
always is, and a no-op attack never beats its own ciphertext, at 32 x 32 and on 224 x 224 crops
upsampled from 32 x 32 (where a flat image of the ciphertext's mean colour scores about 0.7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from attacks.base import AttackConfig, CipherFamily
from harness.data import load_dataset
from harness.metrics import identification, ssim
from harness.registry import attacks
from harness.results import rows_frame
from harness.stats import mean_interval, wilson_interval
from reports.verdicts import judge, strongest

RUN = {
    "config": {"verdict_margin": 0.05},
    "attacks": {
        "none": {"threat_model": "ciphertext-only", "baseline": True},
        "mean_image": {"threat_model": "ciphertext-only", "baseline": True},
        "mean_colour": {"threat_model": "ciphertext-only", "baseline": True},
        "grey": {"threat_model": "ciphertext-only", "baseline": False},
        "flat_guess": {"threat_model": "ciphertext-only", "baseline": False},
        "noop": {"threat_model": "ciphertext-only", "baseline": False},
        "key_recovered": {"threat_model": "ciphertext-only", "baseline": False},
    },
}


def _upsampled(images: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(images.float(), size=(side, side), mode="bicubic", align_corners=False).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module", params=[32, 224], ids=["32x32", "224-upsampled"])
def scored(request) -> tuple[pd.DataFrame, pd.DataFrame]:
    side = request.param
    plain = load_dataset("natural", "test", (32, 32), n=60, seed=2).images
    attacker = load_dataset("natural", "attacker", (32, 32), n=60, seed=2).images
    block = 4 if side == 32 else 16
    if side != 32:
        plain, attacker = _upsampled(plain, side), _upsampled(attacker, side)
    family = CipherFamily("proposed", (side, side), block)
    cipher = family.draw(3)
    ciphertexts = cipher.encrypt(plain)
    restorations = {}
    for name in ("none", "mean_image", "mean_colour"):
        attack = attacks.get(name)()
        attack.fit(attacker, family, AttackConfig())
        restorations[name] = attack.restore(ciphertexts)
    restorations["grey"] = torch.full_like(plain, 128)
    restorations["flat_guess"] = restorations["mean_colour"]  # the same guess, not declared a baseline
    restorations["noop"] = ciphertexts  # e.g. fr's fold on a cipher without negative-positive steps
    restorations["key_recovered"] = cipher.decrypt(ciphertexts)
    rows, per_image = [], []
    cell = {"kind": "security", "dataset": "natural", "cipher": "proposed", "status": "ok"}
    for name, restored in restorations.items():
        scores, hits = ssim(restored, plain).numpy(), identification(restored, plain).double().numpy()
        mean, low, high = mean_interval(scores)
        rate, id_low, id_high = wilson_interval(hits.sum(), hits.size)
        rows += [{**cell, "attack": name, "metric": "ssim", "value": mean, "ci95_low": low, "ci95_high": high},
                 {**cell, "attack": name, "metric": "identification", "value": rate, "ci95_low": id_low, "ci95_high": id_high}]
        per_image.append(pd.DataFrame({"kind": "security", "dataset": "natural", "cipher": "proposed", "attack": name,
                                       "image_id": np.arange(scores.size), "metric": "ssim", "value": scores}))
    return rows_frame(rows), pd.concat(per_image, ignore_index=True)


def test_flat_grey_and_noop_guesses_are_never_broken_and_key_recovery_always_is(scored) -> None:
    frame, per_image = scored
    judged = {j.attack: j for j in judge(frame, per_image, RUN, "natural", "proposed")}
    for guess in ("grey", "flat_guess", "noop"):
        assert not judged[guess].restores, guess
    assert judged["key_recovered"].restores and judged["key_recovered"].ssim == pytest.approx(1.0)
    assert strongest(list(judged.values()), RUN, "ciphertext-only").attack == "key_recovered"


def test_baselines_are_what_makes_the_raw_numbers_meaningful(scored) -> None:
    frame, _ = scored
    ssim_rows = frame[frame["metric"] == "ssim"].set_index("attack")["value"]
    # the grey or flat guesses score far above 0 (0.3 at 32 x 32, more when upsampled): a fixed threshold would misjudge
    assert ssim_rows["mean_colour"] > 0.25 and ssim_rows["grey"] > 0.1


# -- three verdicts: ✗ restores, ✓ resists, ? inconclusive ----------------------------------------
def _frame(scores: dict[str, np.ndarray], identified: dict[str, np.ndarray], keys: dict[str, float] | None = None):
    """Rows and per-image scores of one cell group from per-image invariant scores."""
    cell = {"kind": "security", "dataset": "natural", "cipher": "le", "status": "ok"}
    rows, per_image = [], []
    for name, values in scores.items():
        mean, low, high = mean_interval(values)
        hits = identified[name]
        rate, id_low, id_high = wilson_interval(hits.sum(), hits.size)
        rows += [
            {**cell, "attack": name, "metric": "ssim", "value": mean, "ci95_low": low, "ci95_high": high, "n": values.size},
            {**cell, "attack": name, "metric": "ssim_invariant", "value": mean, "ci95_low": low, "ci95_high": high, "n": values.size},
            {**cell, "attack": name, "metric": "identification_invariant", "value": rate, "ci95_low": id_low, "ci95_high": id_high, "n": hits.size},
        ]
        per_image.append(pd.DataFrame({"kind": "security", "dataset": "natural", "cipher": "le", "attack": name,
                                       "image_id": np.arange(values.size), "metric": "ssim_invariant", "value": values}))
    for name, share in (keys or {}).items():
        rows.append({**cell, "attack": name, "metric": "key_entries_recovered", "value": share})
    return rows_frame(rows), pd.concat(per_image, ignore_index=True)


def _group(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """n images: a baseline, an exact key recovery, a content-free attack, and one that restores half."""
    rng = np.random.default_rng(seed)
    baseline = np.clip(rng.normal(0.30, 0.08, n), -1, 1)
    scores = {
        "mean_colour": baseline,
        "key_recovered": np.ones(n),
        "grey": np.clip(baseline + rng.normal(-0.05, 0.03, n), -1, 1),
        "half": np.where(np.arange(n) % 2 == 0, 0.98, baseline),
    }
    identified = {
        "mean_colour": np.zeros(n), "key_recovered": np.ones(n), "grey": np.zeros(n),
        "half": (np.arange(n) % 2 == 0).astype(float),
    }
    return scores, identified


THREE_RUN = {"config": {"verdict_margin": 0.05}, "attacks": {
    "mean_colour": {"threat_model": "ciphertext-only", "baseline": True},
    "key_recovered": {"threat_model": "ciphertext-only", "baseline": False, "key_recovery": True},
    "grey": {"threat_model": "ciphertext-only", "baseline": False},
    "half": {"threat_model": "ciphertext-only", "baseline": False},
}}


@pytest.mark.parametrize("n", [6, 15, 500])
def test_three_verdicts_at_6_15_and_500_images(n: int) -> None:
    from reports.verdicts import INCONCLUSIVE, MIN_IMAGES_RESISTS, RESISTS, RESTORES

    frame, per_image = _frame(*_group(n))
    judged = {j.attack: j for j in judge(frame, per_image, THREE_RUN, "natural", "le")}
    assert judged["key_recovered"].verdict == RESTORES  # exact: ✗ at any n
    if n < MIN_IMAGES_RESISTS:
        assert judged["grey"].verdict == INCONCLUSIVE and "too few" in judged["grey"].reason
    else:
        assert judged["grey"].verdict == RESISTS
    assert judged["half"].verdict == (INCONCLUSIVE if n == 6 else RESTORES)  # half the images restored: shown from 15 on
    assert MIN_IMAGES_RESISTS == 35


@pytest.mark.parametrize("n", [6, 15])
def test_a_recovered_key_is_never_called_resisting_with_few_images(n: int) -> None:
    """Today's main printed ✓ for LE on 15 photographs (6 scored images) although the key was recovered."""
    from reports.verdicts import RESTORES, model_verdict

    scores, identified = _group(n)
    scores["key_recovered"] = scores["key_recovered"] - 0.001  # a hair below 1.000 on every image
    frame, per_image = _frame(scores, identified, keys={"key_recovered": 1.0})
    verdict = model_verdict(frame, per_image, THREE_RUN, "natural", "le", "ciphertext-only")
    assert verdict.symbol == RESTORES and verdict.deciding.attack == "key_recovered"


def test_only_content_free_guesses_give_resists_with_coverage_named() -> None:
    from reports.tables import coverage_text
    from reports.verdicts import RESISTS, model_verdict

    scores, identified = _group(500)
    frame, per_image = _frame({k: scores[k] for k in ("mean_colour", "grey")}, {k: identified[k] for k in ("mean_colour", "grey")})
    verdict = model_verdict(frame, per_image, THREE_RUN, "natural", "le", "ciphertext-only")
    assert verdict.symbol == RESISTS and verdict.coverage == ["grey"]
    assert "no key-recovery attack applies to this cipher's traits" in coverage_text(verdict)


def test_a_mirrored_exact_restoration_is_judged_restoring_on_invariant_scores() -> None:
    """Raw SSIM of a mirror of the plain image is low; the invariant score, which verdicts use, is 1."""
    plain = load_dataset("natural", "test", (32, 32), n=60, seed=2).images
    from harness.symmetry import SymmetryScores

    mirrored = plain.flip(-1)
    scores = SymmetryScores(3, 32, 32)
    scores.add(mirrored, plain)
    best = scores.best()
    invariant = scores.scores(best)[0].numpy()
    raw = ssim(mirrored, plain).numpy()
    assert best.label == "mirrored" and raw.mean() < 0.5 and invariant.min() > 0.9999
    baseline = ssim(torch.full_like(plain, 128), plain).numpy()
    frame, per_image = _frame({"mean_colour": baseline, "half": invariant},
                              {"mean_colour": np.zeros(60), "half": np.ones(60)})
    assert {j.attack: j for j in judge(frame, per_image, THREE_RUN, "natural", "le")}["half"].restores


def test_a_model_holder_key_recovery_decides_its_own_column_only() -> None:
    """A whole key read from the provider's model is ✗ for the model-holder threat model; the
    ciphertext-only verdict is decided without it, and Table I's model-holder cell of a network is
    that of the attacks reading that network's model (n/a for the others)."""
    from reports.tables import security_verdict
    from reports.verdicts import CIPHERTEXT_ONLY, MODEL_HOLDER, RESISTS, RESTORES, model_verdict

    scores, identified = _group(500)
    run = {"config": THREE_RUN["config"], "attacks": {
        **THREE_RUN["attacks"],
        "weights_checkpoint": {"threat_model": MODEL_HOLDER, "baseline": False, "key_recovery": True, "reads_models": ["keyed", "checkpoint"]},
    }}
    names = ("mean_colour", "grey")
    frame, per_image = _frame({**{k: scores[k] for k in names}, "weights_checkpoint": scores["key_recovered"] - 0.001},
                              {**{k: identified[k] for k in names}, "weights_checkpoint": identified["key_recovered"]},
                              keys={"weights_checkpoint": 1.0})
    assert model_verdict(frame, per_image, run, "natural", "le", MODEL_HOLDER).symbol == RESTORES
    assert model_verdict(frame, per_image, run, "natural", "le", MODEL_HOLDER, "trained") is None
    assert model_verdict(frame, per_image, run, "natural", "le", CIPHERTEXT_ONLY).symbol == RESISTS
    networks = pd.DataFrame({"kind": "accuracy", "cipher": "le", "classifier": ["vit", "vit_keyed", "resnet18"]})
    with_networks = pd.concat([frame, networks], ignore_index=True)
    assert security_verdict(with_networks, per_image, run, "natural", "le", MODEL_HOLDER, "vit_keyed").startswith("✗")
    assert security_verdict(with_networks, per_image, run, "natural", "le", MODEL_HOLDER, "resnet18") == "n/a (no model-holder attack applies)"
    # the network the keyed one derives from (vit, trained on ciphertexts): no attack reading it ran
    # (weights_finetuned n/a for the cipher), so its cell is n/a, not "not measured"
    assert security_verdict(with_networks, per_image, run, "natural", "le", MODEL_HOLDER, "vit") == "n/a (no model-holder attack applies)"
