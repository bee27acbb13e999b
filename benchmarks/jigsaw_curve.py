"""Extended jigsaw on EtC: mean SSIM and share of correct positions vs the number of victim ciphertexts.

Not a test: ``python benchmarks/jigsaw_curve.py [etc|etc_gray ...] [--data natural|photos] [--n 10 20 ...]``
prints one row per (cipher, data, n): mean SSIM over the ciphertexts used, the best mean SSIM
after one whole-image symmetry (rotation/flip, negation, R <-> B for etc; geometry only for
etc_gray: what the jigsaw alone reaches), the share of pixel
positions restored to the right place (``harness.run.security.positions_recovered``), the share of
ciphertext blocks put at their true cell, and the fit's wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attacks.base import AttackConfig, CipherFamily  # noqa: E402
from harness.run.security import positions_recovered  # noqa: E402
from harness.data import load_dataset  # noqa: E402
from harness.metrics import ssim  # noqa: E402
from harness.registry import attacks  # noqa: E402
from attacks.jigsaw import apply_symmetry, symmetries  # noqa: E402
from tests.photos import other_photographs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ciphers", nargs="*", default=["etc", "etc_gray"])
    parser.add_argument("--data", nargs="*", default=["natural", "photos"])
    parser.add_argument("--n", nargs="*", type=int, default=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000])
    parser.add_argument("--block", type=int, default=4)
    parser.add_argument("--key-seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    most = max(args.n)
    sets = {}
    for data in args.data:
        if data == "natural":
            sets[data] = (load_dataset("natural", "train", (32, 32), n=most, seed=0).images,
                          load_dataset("natural", "attacker", (32, 32), n=500, seed=0).images)
        else:
            sets[data] = (other_photographs(most, 32, seed=0), other_photographs(500, 32, seed=1))
    print("cipher    data     n      ssim  ssim_sym  positions  blocks  fit_s")
    for name in args.ciphers:
        family = CipherFamily(name, (32, 32), args.block)
        cipher = family.draw(args.key_seed)
        true = cipher.key()["block_perm"]
        for data, (victim, attacker) in sets.items():
            for n in args.n:
                images = victim[:n]
                attack = attacks.get("extended_jigsaw")()
                start = time.perf_counter()
                attack.fit(attacker, family, AttackConfig(seed=0), victim_ciphertexts=cipher.encrypt(images))
                seconds = time.perf_counter() - start
                restored = attack.restore(cipher.encrypt(images))
                score = float(ssim(restored, images).mean())
                # up to the one whole-image symmetry the jigsaw cannot see (how well the pieces fit)
                group = symmetries(3, True) if name == "etc" else [s for s in symmetries(3, True) if not s[2] and not s[3]]
                best = max(float(ssim(apply_symmetry(restored, s), images).mean()) for s in group)
                positions = positions_recovered(attack, cipher, 3, (32, 32))
                blocks = float(np.mean(attack.key["block_perm"] == true))
                print(f"{name:9s} {data:8s} {n:5d}  {score:6.3f}  {best:6.3f}  {positions:8.3f}  {blocks:6.3f}  {seconds:6.1f}", flush=True)


if __name__ == "__main__":
    main()
