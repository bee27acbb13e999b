"""SSIM of every statistical attack against the number of victim ciphertexts it sees (docs/attacks.md).

    .venv/bin/python -m benchmarks.ciphertext_curves [--ladder 10,20,...] [--attacks puzzle,...] [--data natural|photos] [--out docs/figures]

For every registered attack flagged ``statistical`` and every fixed-key cipher it applies to, the
attack is fitted on the first n of the victim's ciphertexts (test images first, then the encrypted
training set, as the provider holds them) for every n of the ladder, and scored on the same 500
32 x 32 test images: ``natural`` crops, or ``photos`` (photographs the quick preset never uses,
``tests/photos.py``; victim and attacker crops from different seeds).  Prints a markdown table
with the final fit's key entries and positions recovered, and writes ``ciphertext_curves.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from tabulate import tabulate

from attacks.base import AttackConfig, CipherFamily
from harness.run.security import CIPHERTEXT_LADDER, run_security_cell
from harness.data import load_dataset
from harness.keys import derive_seed
from harness.run.config import QUICK
from harness.registry import attacks, ciphers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default=",".join(map(str, CIPHERTEXT_LADDER)))
    parser.add_argument("--attacks", default=None, help="comma list (default: every statistical attack)")
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--data", choices=["natural", "photos"], default="natural")
    parser.add_argument("--out", default="docs/figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ladder = tuple(int(v) for v in args.ladder.split(","))
    names = args.attacks.split(",") if args.attacks else [n for n in attacks.names() if attacks.get(n).statistical]
    more = max(ladder) - args.n_test + 32
    if args.data == "natural":
        test = load_dataset("natural", "test", (32, 32), n=args.n_test, seed=0).images
        train = load_dataset("natural", "train", (32, 32), n=more, seed=0).images
        attacker = load_dataset("natural", "attacker", (32, 32), n=1000, seed=0).images
    else:
        from tests.photos import other_photographs

        victim = other_photographs(args.n_test + more, seed=0)
        test, train, attacker = victim[: args.n_test], victim[args.n_test :], other_photographs(1000, seed=1)
    curves: dict[tuple[str, str], list[tuple[int, float]]] = {}
    recovered: dict[tuple[str, str], str] = {}
    for attack in names:
        for cipher in ciphers.names():
            options = dict(QUICK["ciphers"].get(cipher, {}))
            family = CipherFamily(cipher, (32, 32), options.pop("block_size", None), options)
            if family.traits.identity or attacks.get(attack).applies_to(family) is not None:
                continue
            started = time.perf_counter()
            victim = family.draw(derive_seed(0, "victim-key", cipher))
            result = run_security_cell(
                attack, family, victim, torch.cat([test, train[:32]]), attacker, AttackConfig(known_pairs=32),
                cache_dir=None, pool_images=train[32:], ladder=ladder,
            )
            curves[(attack, cipher)] = result.curve
            recovered[(attack, cipher)] = ", ".join(
                f"{name} {result.extra[name]:.3f}" for name in ("key_entries_recovered", "positions_recovered") if name in result.extra
            )
            print(f"{attack} on {cipher}: {time.perf_counter() - started:.0f} s", flush=True)
    counts = sorted({n for curve in curves.values() for n, _ in curve})
    body = [[a, c, *[next((f"{v:.3f}" for n, v in curve if n == k), "") for k in counts], recovered[(a, c)]]
            for (a, c), curve in curves.items()]
    headers = ["attack", "cipher", *map(str, counts), "recovered (all ciphertexts)"]
    print(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for (attack, cipher), curve in curves.items():
        ax.plot([n for n, _ in curve], [v for _, v in curve], marker="o", label=f"{attack} on {cipher}")
    ax.set_xscale("log")
    ax.set_xlabel("victim ciphertexts the attacker holds (one key)")
    ax.set_ylabel(f"mean SSIM on {args.n_test} test images")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"ciphertext_curves{'' if args.data == 'natural' else '_photos'}.png", dpi=110)


if __name__ == "__main__":
    main()
