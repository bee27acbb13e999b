"""A time model of the whole paper grid: every cell kind measured for a few steps, then extrapolated.

    .venv/bin/python -m benchmarks.paper_time_model --device cuda [--tiny]

For each network of the paper preset it times a few training steps of the harness's own
``train_step`` (augment, encrypt, forward, backward, update) at the preset's image size and batch
(``--tiny``: batch 4, one timed step, for a CPU check of the script); for each attack that applies
to each cipher it runs a small security cell and times the fit and the scoring pass separately.
Then every cell of the grid (both datasets: CIFAR-10 and CIFAR-100, 50,000 training, 10,000 test
and 10,000 attacker images) gets an estimated time:

- accuracy: ``epochs x ceil(50,000 / batch)`` steps at the measured step time, plus the test pass
  (forward only: a third of a step per batch, assumed);
- security: the fit scaled by what it consumes (``itn``: epochs x attacker batches; ``gan``: its
  steps; statistical attacks: linear in the 60,000 ciphertexts the provider holds, plus one fit and
  one scoring pass per ladder rung; the rest as measured), plus scoring 10,000 test images.

On 8 devices: ``torchrun`` as the harness runs it (every accuracy cell under DDP at an assumed 90%
scaling, security cells on rank 0), and 8 shards (``--shard i/8``, each cell on one device, the
longest first); the smaller of the two is reported.  The last line reads
``estimated paper grid: <hours> h on 1 device, <hours> h on 8``.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import math
import time
from dataclasses import dataclass

import torch
from tabulate import tabulate

from attacks.base import AttackConfig, CipherFamily
from harness import training
from harness.registry import attacks, classifiers, create_cipher
from harness.run.config import PAPER
from harness.run.plan import default_ciphers
from harness.run.security import run_security_cell

DATASETS = {"cifar10": 10, "cifar100": 100}
N_TRAIN, N_TEST, N_ATTACKER = 50_000, 10_000, 10_000
DDP_SCALING = 0.9


@dataclass
class CellTime:
    dataset: str
    kind: str
    cipher: str
    component: str
    seconds: float
    basis: str


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(name: str, cipher_name: str, config: dict, device: torch.device, tiny: bool) -> tuple[float, int]:
    """Seconds of one harness training step of classifier ``name`` on ``cipher_name``'s ciphertexts, and the batch."""
    settings = dict(config["classifiers"].get(name) or {})
    size = tuple(config["classifier_image_size"].get(name) or config["cipher_image_size"].get(cipher_name) or config["image_size"])
    options = dict(config["ciphers"].get(cipher_name) or {})
    block = options.pop("block_size", None)
    cipher = create_cipher(cipher_name, size, block, seed=0, **options)
    model_options = {k: v for k, v in (settings.pop("model_options", {}) or {}).items() if k not in ("pretrained", "pretrained_tag")}
    cls = classifiers.get(name)
    model = cls.build(num_classes=10, image_size=size, block_size=cipher.block_size, **cls.for_cipher(cipher, model_options))
    batch = 4 if tiny else int(settings.get("batch_size", 128))
    train_config = training.TrainConfig(**{k: v for k, v in settings.items() if k in training.TrainConfig.__dataclass_fields__})
    training.prepare_model(model, device)
    optimizer = training.sgd(model, train_config, 0.01)
    plain = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    index = torch.arange(batch, device=device)
    timed = 1 if tiny else 5
    for step in range(1 + timed):
        if step == 1:
            _sync(device)
            started = time.perf_counter()
        training.train_step(model, optimizer, cipher, plain, labels, index, train_config)
    _sync(device)
    return (time.perf_counter() - started) / timed, batch


def accuracy_times(config: dict, device: torch.device, tiny: bool) -> list[CellTime]:
    measured: dict[tuple[str, str], tuple[float, int]] = {}
    cells = []
    planned = set(default_ciphers(config))  # the paper grid's ciphers (the newer ones run only when named)
    for cipher, paired in config["pairings"].items():
        if cipher not in planned:
            continue
        for name in paired:
            trained = getattr(classifiers.get(name), "plain_base", None)
            if trained is not None:
                continue  # derived from its plain network's model: no training of its own
            key = (name, cipher)
            if key not in measured:
                measured[key] = step_seconds(name, cipher, config, device, tiny)
                print(f"measured {name} on {cipher}: {measured[key][0]:.3f} s per step of {measured[key][1]}", flush=True)
            seconds, batch = measured[key]
            epochs = int(config["classifiers"][name]["epochs"])
            full_batch = int(config["classifiers"][name].get("batch_size", batch))
            steps = epochs * math.ceil(N_TRAIN / full_batch)
            per_image = seconds / batch
            total = per_image * (steps * full_batch + N_TEST / 3)
            for dataset in DATASETS:
                cells.append(CellTime(dataset, "accuracy", cipher, name, total, f"{steps} steps of {full_batch}"))
    return cells


def fit_scale(attack: str, config: dict, small: AttackConfig, seen_small: int) -> tuple[float, str]:
    """How much more the paper's fit consumes than the measured one, and why."""
    settings = config["attacks"].get(attack) or {}
    cls = attacks.get(attack)
    if attack == "gan":
        return settings.get("steps", 1) / (small.steps or 1), f"{settings.get('steps')} steps"
    if cls.learned:
        epochs, batch = settings.get("epochs", 10), settings.get("batch_size", 64)
        return epochs * N_ATTACKER / batch / max(1, small.epochs * math.ceil(64 / small.batch_size)), f"{epochs} epochs"
    if cls.uses_victim_ciphertexts:
        return (N_TRAIN + N_TEST) / seen_small, f"{N_TRAIN + N_TEST} ciphertexts"
    return 1.0, "as measured"


def security_times(config: dict, device: torch.device, tiny: bool) -> list[CellTime]:
    cells = []
    small = AttackConfig(epochs=1, batch_size=16, steps=2, known_pairs=8)
    ladder = [int(n) for n in config["ciphertext_ladder"]]
    for cipher, options in config["ciphers"].items():
        options = dict(options or {})
        block = options.pop("block_size", None)
        size = tuple(config["cipher_image_size"].get(cipher) or config["image_size"])
        family = CipherFamily(cipher, size, block, options)
        if family.traits.identity:
            continue
        victim = family.draw(1)
        count = 16 if tiny or size[0] > 64 else 64
        images = torch.randint(0, 256, (count + 8, 3, *size), dtype=torch.uint8)
        pool = torch.randint(0, 256, (count * 3, 3, *size), dtype=torch.uint8)
        for attack in attacks.names():
            if attacks.get(attack).applies_to(family) is not None or attacks.get(attack).reads_models:
                continue  # a model holder's cell reads the accuracy cells' models: a linear assignment, seconds
            started = time.perf_counter()
            result = run_security_cell(attack, family, victim, images, images[:count], small, cache_dir=None,
                                       pool_images=pool, ladder=(), device=device)
            total = time.perf_counter() - started
            score_per_image = max(total - result.fit_seconds, 0.0) / count
            seen = count * 4
            scale, basis = fit_scale(attack, config, small, seen)
            fit = result.fit_seconds * scale
            rungs = [n for n in ladder if n < N_TRAIN + N_TEST] if attacks.get(attack).statistical else []
            ladder_time = sum(result.fit_seconds * n / seen + score_per_image * N_TEST for n in rungs)
            seconds = fit + score_per_image * N_TEST + ladder_time
            for dataset in DATASETS:
                cells.append(CellTime(dataset, "security", cipher, attack, seconds, basis + (f", ladder of {len(rungs)}" if rungs else "")))
        print(f"measured the attacks on {cipher}", flush=True)
    return cells


def on_eight(cells: list[CellTime]) -> tuple[float, str]:
    """Hours on 8 devices: the better of torchrun (DDP accuracy, security on rank 0) and 8 shards (longest first)."""
    accuracy = sum(c.seconds for c in cells if c.kind == "accuracy")
    security = sum(c.seconds for c in cells if c.kind == "security")
    torchrun = accuracy / (8 * DDP_SCALING) + security
    loads = [0.0] * 8
    for seconds in sorted((c.seconds for c in cells), reverse=True):
        heapq.heapreplace(loads, loads[0] + seconds)
    shards = max(loads)
    return (torchrun / 3600, "torchrun") if torchrun <= shards else (shards / 3600, "8 shards")


def paper_config(tiny: bool) -> dict:
    """The paper preset as written (no data folder: nothing is read); ``tiny``: no pretrained
    download, and networks small enough to time on a CPU in seconds."""
    config = copy.deepcopy(PAPER)
    if tiny:
        config["classifiers"]["vit"]["model_options"].update({"size": "nano", "depth": 1})
        config["classifiers"]["shakedrop"]["model_options"].update({"depth": 8, "alpha": 24})
        config["classifiers"]["adaptation"]["model_options"]["backbone_options"].update({"depth": 8, "alpha": 24})
    return config


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="batch 4 and one timed step: checks the script on a CPU")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    config = paper_config(args.tiny)
    cells = accuracy_times(config, device, args.tiny) + security_times(config, device, args.tiny)
    body = [[c.dataset, c.kind, c.cipher, c.component, f"{c.seconds / 3600:.3f}", c.basis] for c in cells]
    lines = [tabulate(body, headers=["dataset", "kind", "cipher", "network / attack", "hours (1 device)", "basis"], tablefmt="github")]
    one = sum(c.seconds for c in cells) / 3600
    eight, launcher = on_eight(cells)
    lines.append(f"assumptions: {'--tiny stand-in networks (nano ViT, PyramidNet-8): the figures check the script, not the paper' if args.tiny else 'the paper networks at the preset batch'}; "
                 f"DDP scaling {DDP_SCALING:.0%}; test pass = a third of a training step per batch; model-holder cells (seconds each) "
                 f"not timed; 8 devices via {launcher}")
    lines.append(f"estimated paper grid: {one:.2f} h on 1 device, {eight:.2f} h on 8")
    for line in lines:
        print(line)
    return lines


if __name__ == "__main__":
    main()
