"""Print the ``nibble`` attack's curve: SSIM and key slots recovered against victim ciphertexts.

    python benchmarks/nibble_curve.py [--ciphers le ele] [--ns 10 20 50 ...] [--data natural photos]

Victims: the ``natural`` train split (attacker images from its ``attacker`` split) or crops of
other photographs (``tests/photos.py``, attacker crops drawn with another seed).  Not a test.
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
from attacks.nibble import NibbleAttack  # noqa: E402
from harness.data import load_dataset  # noqa: E402
from harness.metrics import ssim  # noqa: E402
from tests.photos import other_photographs  # noqa: E402


def images(data: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if data == "natural":
        victim = load_dataset("natural", "train", (32, 32), n=n, seed=0).images
        return victim, load_dataset("natural", "attacker", (32, 32), n=500, seed=0).images
    return other_photographs(n, 32, seed=11), other_photographs(500, 32, seed=12)


def key_fraction(true: dict[str, np.ndarray], found: dict[str, np.ndarray]) -> float:
    if "perm" in true:
        return float((true["perm"] == found["perm"]).mean())
    return float((true["perms"] == found["perms"]).mean())


def position_keys(true: dict[str, np.ndarray], found: dict[str, np.ndarray]) -> float:
    """ELE: fraction of key slots right at each ciphertext position, whatever the jigsaw did."""
    if "perm" in true:
        return key_fraction(true, found)
    return float((true["perms"][true["block_perm"]] == found["perms"][found["block_perm"]]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ciphers", nargs="+", default=["le", "ele"])
    parser.add_argument("--ns", nargs="+", type=int, default=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000])
    parser.add_argument("--data", nargs="+", default=["natural", "photos"])
    parser.add_argument("--key-seed", type=int, default=1)
    parser.add_argument("--eval", type=int, default=500, help="victim images scored by SSIM")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'data':8} {'cipher':6} {'n':>5} {'ssim':>7} {'slots':>7} {'blocks':>7} {'pos_keys':>8} {'fit_s':>7}")
    for data in args.data:
        victim_all, attacker = images(data, max(args.ns))
        for name in args.ciphers:
            family = CipherFamily(name, (32, 32), 4)
            cipher = family.draw(args.key_seed)
            for n in args.ns:
                victim = victim_all[:n]
                attack = NibbleAttack(max_ciphertexts=max(n, 1))
                start = time.perf_counter()
                attack.fit(attacker, family, AttackConfig(seed=0), victim_ciphertexts=cipher.encrypt(victim))
                seconds = time.perf_counter() - start
                scored = victim_all[: max(n, args.eval)][: args.eval]
                score = float(ssim(attack.restore(cipher.encrypt(scored)), scored).mean())
                true, found = cipher.key(), attack.key
                blocks = float((true["block_perm"] == found["block_perm"]).mean()) if "block_perm" in true else float("nan")
                print(f"{data:8} {name:6} {n:5d} {score:7.4f} {key_fraction(true, found):7.3f} {blocks:7.3f} {position_keys(true, found):8.3f} {seconds:7.1f}", flush=True)


if __name__ == "__main__":
    main()
