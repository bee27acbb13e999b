"""The statistical attacks on photographs the project never tuned them on (docs/attacks.md).

    .venv/bin/python -m benchmarks.cross_source [--sources natural,other,...] [--ciphers le,ele,etc,etc_gray] [--seed 0] [--size 32]

For every photo source (the embedded ``natural`` crops and the sources of ``tests/photos.py``,
which need ``apt-get install opencv-doc mate-backgrounds plasma-workspace-wallpapers``) and every
fixed-key cipher a ciphertext-only key-recovery attack applies to (each at its default block size):
a fresh victim key, 200 scored ``--size`` x ``--size`` (32) test crops of the source plus 1,800 more ciphertexts of the same source under that key (the
provider's encrypted training set; 2,000 in all), the attacker's own images from ``natural``'s
attacker split (1,000).  The attack is fitted on the first 100, 500 and 2,000 ciphertexts; the
content-free baselines (``none``, ``mean_image``, ``mean_colour``) are scored on the same images,
and the report's verdict rule (:mod:`reports.verdicts`) judges the attack at 2,000.  Prints one
markdown table: symmetry-invariant mean SSIM at each count, raw SSIM, the chosen transform, the
verdict with its reason, the key entries recovered and the seconds taken.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from tabulate import tabulate

from attacks.base import AttackConfig, CipherFamily
from harness.data import load_dataset
from harness.keys import derive_seed
from harness.registry import attacks
from harness.results import rows_frame
from harness.run.security import run_security_cell
from harness.run.security_rows import security_rows
from reports.verdicts import CIPHERTEXT_ONLY, model_verdict

SOURCES = ("natural", "other", "opencv_samples", "mate_nature", "plasma_photos")
CIPHERS = ("le", "ele", "etc", "etc_gray")
BASELINES = ("none", "mean_image", "mean_colour")
SCORED, HELD = 200, 2000


def victim_images(source: str, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(scored test crops + 1 known pair, the rest of the 2,000 ciphertexts' plain images)."""
    if source == "natural":
        test = load_dataset("natural", "test", (size, size), n=SCORED + 1, seed=seed).images
        pool = load_dataset("natural", "train", (size, size), n=HELD - SCORED, seed=seed).images
        return test, pool
    from tests.photos import other_photographs

    return (other_photographs(SCORED + 1, size, seed=derive_seed(seed, source, "test"), source=source),
            other_photographs(HELD - SCORED, size, seed=derive_seed(seed, source, "pool"), source=source))


def statistical_attack(family: CipherFamily) -> str | None:
    """The ciphertext-only key-recovery attack that applies to ``family``'s traits, if any."""
    for name in attacks.names():
        cls = attacks.get(name)
        if cls.statistical and cls.key_recovery and cls.applies_to(family) is None:
            return name
    return None


def judge_cell(source: str, cipher: str, family: CipherFamily, seed: int, attacker: torch.Tensor) -> list[str] | None:
    attack = statistical_attack(family)
    if attack is None:
        return None
    victim = family.draw(derive_seed(seed, "cross-source", source, cipher))
    test, pool = victim_images(source, seed, family.image_size[0])
    rows, per_image, run = [], [], {"config": {"verdict_margin": 0.05, "attacks": {}}, "attacks": {}}
    started = time.perf_counter()
    results = {}
    for name in (*BASELINES, attack):
        result = run_security_cell(name, family, victim, test, attacker, AttackConfig(known_pairs=1, seed=seed),
                                   cache_dir=None, pool_images=pool, ladder=(100, 500))
        base = {"kind": "security", "dataset": source, "cipher": cipher, "attack": name, "key_condition": "same_key",
                "classifier": "", "preset": "cross_source", "seed": seed}
        cell_rows, scores, _ = security_rows(base, result, 0)
        rows += cell_rows
        per_image += [pd.DataFrame({"kind": "security", "dataset": source, "cipher": cipher, "attack": name,
                                    "image_id": range(len(values)), "metric": metric, "value": values})
                      for metric, values in scores.items()]
        cls = attacks.get(name)
        run["attacks"][name] = {"threat_model": cls.threat_model, "baseline": cls.baseline, "key_recovery": cls.key_recovery}
        results[name] = result
    seconds = time.perf_counter() - started
    verdict = model_verdict(rows_frame(rows), pd.concat(per_image, ignore_index=True), run, source, cipher, CIPHERTEXT_ONLY)
    mine = results[attack]
    curve = dict(mine.curve)
    return [source, cipher, attack, *[f"{curve.get(n, float('nan')):.3f}" for n in (100, 500)],
            f"{float(mine.invariant.ssim.mean()):.3f}", f"{float(mine.ssim.mean()):.3f}", mine.invariant.symmetry.label,
            f"{verdict.text} ({verdict.reason})" if verdict else "–",
            f"{mine.extra.get('key_entries_recovered', float('nan')):.3f}", f"{seconds:.0f}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--ciphers", default=",".join(CIPHERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=32, help="square image side (default 32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    size = (args.size, args.size)
    attacker = load_dataset("natural", "attacker", size, n=1000, seed=args.seed).images
    body = []
    for source in args.sources.split(","):
        for cipher in args.ciphers.split(","):
            line = judge_cell(source, cipher, CipherFamily(cipher, size), args.seed, attacker)
            if line is not None:
                body.append(line)
                print(" | ".join(line), flush=True)
    headers = ["source", "cipher", "attack", "SSIM@100", "SSIM@500", "SSIM@2000", "raw SSIM@2000", "transform",
               "verdict at 2,000", "key entries", "s"]
    print(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
