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
