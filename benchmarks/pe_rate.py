"""PE's encryption rate (per-image keys derived on the device) in images per second at 224 x 224.

    .venv/bin/python -m benchmarks.pe_rate --device cuda [--json out.json] [--tiny]

A uint8 batch and its image ids live on the device; each timed call derives every image's key
from its id and encrypts the batch, as a training or scoring step does (goal on a GPU: at least
100,000 images/s).  Median of the timed rounds after one warm-up call; ``--tiny`` (batch 8,
32 x 32, 3 rounds) checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from harness.registry import create_cipher


def encrypt_rate(device: torch.device, side: int, batch: int, rounds: int) -> float:
    """Median images/s of ``pe`` (diff_key) encrypting a ``batch`` of ``side`` x ``side`` images on ``device``."""
    cipher = create_cipher("pe", (side, side), 1, seed=0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=generator).to(device)
    ids = torch.arange(batch, device=device)
    rates = []
    for step in range(rounds + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        cipher.encrypt(images, image_ids=ids + step * batch)  # new ids each round: no key is reused
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:  # the first call is the warm-up
            rates.append(batch / (time.perf_counter() - started))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--tiny", action="store_true", help="batch 8 at 32 x 32, 3 rounds: checks the script on a CPU")
    args = parser.parse_args(argv)
    side, batch, rounds = (32, 8, 3) if args.tiny else (224, args.batch, 20)
    rate = encrypt_rate(torch.device(args.device), side, batch, rounds)
    print(f"pe encrypt at {side}x{side}, batch {batch}, {args.device}: {rate:,.0f} images/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"tiny": args.tiny, "side": side, "batch": batch, "device": args.device, "images_per_s": rate}))
    return rate


if __name__ == "__main__":
    main()
