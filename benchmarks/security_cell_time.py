"""Seconds of a security cell at the paper's image size, once cold and once warm, on one device.

    .venv/bin/python -m benchmarks.security_cell_time --device cuda [--attacks none] [--json out.json] [--tiny]

Writes a CIFAR-10 folder (random content, the exact pickle format), then runs each ``proposed``
security cell of the paper preset (224 x 224, 16 x 16 blocks, no ciphertext ladder) on 2,000
attacker and training images and 10,000 test images (the goal for ``none`` on a GPU: under 1 s).
The first run of a cell pays for imports, CUDA start-up and kernel loading; the second, in a
fresh cell context of the same process, is the figure compared with the goal.  ``--tiny``
(64 x 64, 64 images a split) checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from harness.run import Cell, CellContext, compute_cell, resolve_config

#: (attacker and training images, test images)
IMAGES = (2_000, 10_000)
TINY_IMAGES = (32, 64)


def cell_seconds(attack: str, data_dir: Path, run_dir: Path, device: str, tiny: bool) -> float:
    """Wall seconds of one ``proposed`` security cell with ``attack``, in a fresh cell context."""
    attacker, test = TINY_IMAGES if tiny else IMAGES
    overrides = {"datasets": ["cifar10"], "data_dir": str(data_dir), "n_train": attacker, "n_attacker": attacker, "n_test": test}
    config = resolve_config("paper", None, overrides)
    config["ciphertext_ladder"] = []
    if tiny:
        config["cipher_image_size"] = {**config["cipher_image_size"], "proposed": [64, 64]}
    ctx = CellContext(config, run_dir, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    output = compute_cell(Cell("security", "cifar10", "proposed", attack=attack), ctx)
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    failed = [row for row in output.rows if row.get("status") not in (None, "ok")]
    if failed:
        raise RuntimeError(f"security cell proposed/{attack} did not complete: {failed[0]}")
    return seconds


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--attacks", default="none", help="comma-separated attacks of the proposed cipher's security cells")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--tiny", action="store_true", help="64 x 64 and 64 images a split: checks the script on a CPU")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 8))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.cifar_folders import write_cifar10

    attacker, test = TINY_IMAGES if args.tiny else IMAGES
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "cifar"
        write_cifar10(data, per_batch=max(attacker, test))
        for attack in args.attacks.split(","):
            cold = cell_seconds(attack, data, Path(scratch) / f"{attack}-cold", args.device, args.tiny)
            warm = cell_seconds(attack, data, Path(scratch) / f"{attack}-warm", args.device, args.tiny)
            rows.append({"cell": f"security proposed/{attack}", "images": f"{attacker} + {test}", "device": args.device,
                         "cold s": cold, "warm s": warm})
    print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3f"))
    if args.json:
        Path(args.json).write_text(json.dumps({"tiny": args.tiny, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
