"""A reduced paper run: CIFAR-format data the run writes, the paper preset at 224 x 224, a few hundred steps.

    .venv/bin/python -m benchmarks.reduced_paper_run --device cuda --out gpu-checks/paper [--tiny]

Writes a CIFAR-10 folder (random content: this measures time and memory, not accuracy), then
runs ``scramblebench run --preset paper`` on it for the proposed cipher and plain images: ViT-B/16
(no pretrained download) at 224 x 224 with 16 x 16 blocks for ``steps`` optimiser steps at
batch 128, and the ciphertext-only and known-plaintext attacks on all the victim's images
(ITN and GAN cut short).  Prints the wall time and the peak host and device memory, and leaves
the run folder (report.md, results.csv) under ``--out``.  ``--tiny`` shrinks everything (64 x 64,
a one-layer ViT) so the script itself can be checked on a CPU in a minute.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml


def config(steps: int, images: int, batch: int, tiny: bool) -> dict:
    epochs = max(1, round(steps * batch / images))
    vit = {"epochs": epochs, "batch_size": batch, "warmup_epochs": 0, "model_options": {"pretrained": False, "pretrained_tag": None}}
    if tiny:
        vit["model_options"].update({"size": "nano", "embed_dim": 32, "depth": 1, "num_heads": 2})
    side = 64 if tiny else 224
    return {
        "cipher_image_size": {"proposed": [side, side]},
        "classifier_image_size": {"vit": [side, side]},
        "ciphertext_ladder": [100, 1000],
        "pairings": {"plain": ["vit"], "proposed": ["vit", "vit_keyed"]},
        "classifiers": {"vit": vit},
        "attacks": {"itn": {"epochs": 1, "batch_size": 64}, "gan": {"steps": 50, "batch_size": 32}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default="gpu-checks/paper")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--per-batch", type=int, default=2000, help="images per CIFAR file (5 training files, 1 test file)")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from harness.run.cli import main as scramblebench
    from tests.cifar_folders import write_cifar10

    per_batch = 64 if args.tiny else args.per_batch
    steps, batch = (8, 16) if args.tiny else (args.steps, args.batch)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as data:
        write_cifar10(Path(data), per_batch=per_batch)
        config_file = Path(data) / "reduced_paper.yaml"
        config_file.write_text(yaml.safe_dump(config(steps, 5 * per_batch, batch, args.tiny)))
        argv = ["run", "--preset", "paper", "--config", str(config_file), "--data-dir", data, "--dataset", "cifar10",
                "--ciphers", "plain,proposed", "--attacks", "none,mean_image,mean_colour,kpa,puzzle,itn,gan",
                "--device", args.device, "--out", str(out), "--progress", "none", "--no-resume"]
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(args.device)
        started = time.perf_counter()
        code = scramblebench(argv)
        seconds = time.perf_counter() - started
    summary = {
        "exit_code": code, "seconds": round(seconds, 1), "train_images": 5 * per_batch, "test_images": per_batch,
        "steps": steps, "batch": batch, "peak_host_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if args.device.startswith("cuda"):
        summary["peak_device_mb"] = round(torch.cuda.max_memory_allocated(args.device) / 2**20)
        summary["gpu"] = torch.cuda.get_device_name(args.device)
    print(json.dumps(summary))
    (out / "reduced_paper_run.json").write_text(json.dumps(summary, indent=1))
    sys.exit(code)


if __name__ == "__main__":
    main()
