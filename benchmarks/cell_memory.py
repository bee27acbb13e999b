"""Peak host (and device) memory of every cell kind at the paper preset's sizes (docs/performance.md).

    .venv/bin/python -m benchmarks.cell_memory [--scale 1.0] [--cells proposed:puzzle,...] [--device cpu] [--json out.json]

Writes a CIFAR-10 folder in the exact pickle format (``--scale 1``: the real 50,000 training and
10,000 test images, random content), then runs each cell of the paper preset in a fresh process
(224 x 224 with 16 x 16 blocks for ``proposed`` and the ViT, 32 x 32 for the other ciphers) and
reads that process's peak resident set size (``ru_maxrss``) and, on CUDA, its peak allocated
device memory.  Security cells see every split at full size (the attacker holds the encrypted
training set as well as the test images), with the ciphertext ladder left out: it refits the
attack on subsets, which costs time, not memory.  Learned parts are cut short (a few steps: a
step's memory does not grow with the step count), and accuracy cells train and test on 64
images, so their row says how much the full splits' stored bytes add (an estimate; every other
figure is measured).  ``baseline`` is a process that only imports the harness.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from tabulate import tabulate

#: the cells measured by default: (cipher, kind, component) covering every cell kind and attack family
DEFAULT_CELLS = (
    "proposed:key_space",
    "proposed:accuracy:vit",
    "plain:accuracy:shakedrop",
    "proposed:security:none",
    "proposed:security:mean_image",
    "proposed:security:mean_colour",
    "proposed:security:kpa",
    "proposed:security:puzzle",
    "proposed:security:itn",
    "proposed:security:gan",
    "le:security:nibble",
    "etc:security:extended_jigsaw",
    "pe:security:fr",
)

#: the paper preset, with learned parts cut to a few steps and the ladder left out
SHORT = {
    "ciphertext_ladder": [],
    "classifiers": {
        "vit": {"epochs": 1, "batch_size": 16, "model_options": {"pretrained": False}},
        "shakedrop": {"epochs": 1, "batch_size": 16},
        "resnet18": {"epochs": 1, "batch_size": 16},
        "adaptation": {"epochs": 1, "batch_size": 16},
    },
    "attacks": {"itn": {"epochs": 1, "batch_size": 128}, "gan": {"steps": 3}},
}
#: accuracy cells train and test on this many images (a ViT-B/16 epoch at 224 does not fit a CPU run)
ACCURACY_IMAGES = 64
#: bytes one stored CIFAR image takes (3 x 32 x 32 uint8)
STORED_IMAGE_BYTES = 3072


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: str, data_dir: str, device: str, threads: int, override: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in this process; return its peak memory and time."""
    import torch

    torch.set_num_threads(threads)
    from harness.run.cells import CellContext, compute_cell
    from harness.run.plan import Cell
    from harness.run.config import merge, resolve_config

    if spec == "baseline":
        return {"cell": spec, "peak_rss_mb": peak_rss_mb(), "seconds": 0.0}
    cipher, kind, *component = spec.split(":")
    overrides = merge(SHORT, override)
    if kind in ("accuracy", "key_space"):
        overrides = {**overrides, "n_train": ACCURACY_IMAGES, "n_test": ACCURACY_IMAGES}
    with tempfile.TemporaryDirectory() as out:
        config_file = Path(out) / "short.yaml"
        config_file.write_text(yaml.safe_dump(overrides))
        config = resolve_config("paper", config_file, {"datasets": ["cifar10"], "data_dir": data_dir})
        cell = Cell(
            kind, "cifar10", cipher,
            classifier=component[0] if kind == "accuracy" else "",
            attack=component[0] if kind == "security" else "",
            key_condition="diff_key" if cipher == "pe" else "same_key",
        )
        ctx = CellContext(config, Path(out) / "run", device=device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        output = compute_cell(cell, ctx)
        seconds = time.perf_counter() - started
    status = {row.get("status") for row in output.rows}
    result: dict[str, Any] = {"cell": spec, "peak_rss_mb": peak_rss_mb(), "seconds": seconds, "status": ",".join(sorted(map(str, status)))}
    if device.startswith("cuda"):
        result["peak_device_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    ssim = [row["value"] for row in output.rows if row.get("metric") == "ssim"]
    if ssim:
        result["ssim"] = ssim[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of CIFAR-10's real split sizes to write")
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--override", default="{}", help="a YAML mapping merged over the short settings, e.g. '{attacks: {itn: {batch_size: 32}}}'")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.device, args.threads, yaml.safe_load(args.override))))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.cifar_folders import write_cifar10

    per_batch = max(64, round(10_000 * args.scale))
    rows = []
    with tempfile.TemporaryDirectory() as data:
        write_cifar10(Path(data), per_batch=per_batch)
        for spec in ["baseline", *args.cells.split(",")]:
            command = [sys.executable, "-m", "benchmarks.cell_memory", "--child", spec, "--data-dir", data,
                       "--device", args.device, "--threads", str(args.threads), "--override", args.override]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                rows.append({"cell": spec, "error": done.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    full = {"train": 50_000, "test": 10_000}
    for row in rows:
        if row["cell"].split(":")[1:2] == ["accuracy"] and "peak_rss_mb" in row:
            extra_images = (full["train"] - ACCURACY_IMAGES) + (full["test"] - ACCURACY_IMAGES)
            row["estimated_full_rss_mb"] = row["peak_rss_mb"] + extra_images * STORED_IMAGE_BYTES / 2**20
    header = {"split sizes": f"train {5 * per_batch}, test {per_batch}, attacker {per_batch}", "device": args.device,
              "threads": args.threads, "override": yaml.safe_load(args.override)}
    print(json.dumps(header))
    columns = ["cell", "peak_rss_mb", "estimated_full_rss_mb", "peak_device_mb", "seconds", "ssim", "status", "error"]
    print(tabulate([[row.get(c, "") for c in columns] for row in rows], headers=columns, tablefmt="github", floatfmt=".0f"))
    if args.json:
        Path(args.json).write_text(json.dumps({"setup": header, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
