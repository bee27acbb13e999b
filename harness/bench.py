"""The benchmark runner: expand a configuration into cells, run the missing ones, store rows.

A cell is (dataset, cipher, classifier) for accuracy, (dataset, cipher, attack) for security and
(dataset, cipher) for the key space and example images.  Finished cells found in the results
store are skipped (resume); a failing cell is recorded with its error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import platform
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ciphers.base import Cipher
from harness.data import ImageDataset, load_dataset
from harness.keys import derive_seed
from harness.metrics import ssim
from harness.progress import ProgressCallback
from harness.registry import Registry, attacks, ciphers, classifiers
from harness.results import ResultStore, cell_id, exact_int_string
from harness.stats import bootstrap_mean_interval, mean_interval, wilson_interval

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cell:
    kind: str
    dataset: str
    cipher: str
    classifier: str = ""
    attack: str = ""
    key_condition: str = "same_key"

    @property
    def id(self) -> tuple[str, ...]:
        return cell_id(self.__dict__)

    @property
    def label(self) -> str:
        component = self.classifier or self.attack or "key space"
        return f"{self.kind}: {self.dataset} / {self.cipher} / {component}"


@dataclass
class CellOutput:
    """What one cell computed: its result rows, per-image scores (metric -> values by image id) and
    example images (name, uint8 images, their SSIM or None); the runner stores them."""

    rows: list[dict[str, Any]]
    per_image: dict[str, np.ndarray] | None = None
    examples: list[tuple[str, np.ndarray, np.ndarray | None]] = field(default_factory=list)


@dataclass
class Selection:
    """fnmatch patterns from the command line; ``None`` keeps everything."""

    ciphers: list[str] | None = None
    classifiers: list[str] | None = None
    attacks: list[str] | None = None
    kinds: tuple[str, ...] = ("key_space", "accuracy", "security")


def select(registry: Registry, patterns: list[str] | None) -> list[str]:
    """Registered names matching any pattern; a pattern matching nothing is a usage error."""
    names = registry.names()
    if patterns is None:
        return names
    chosen: list[str] = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched and pattern in registry:
            matched = [registry.entry(pattern).name]
        if not matched:
            registry.get(pattern)  # raises the did-you-mean KeyError
        chosen += [n for n in matched if n not in chosen]
    return chosen


def cipher_options(config: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(config["ciphers"].get(name) or {})


def key_condition(config: dict[str, Any], name: str) -> str:
    default = "diff_key" if ciphers.get(name).per_image_key else "same_key"
    return str(cipher_options(config, name).get("key_condition", default))


def plan_cells(config: dict[str, Any], selection: Selection) -> list[Cell]:
    """Every cell of the grid, in the order they run (cheap kinds first)."""
    cipher_names = select(ciphers, selection.ciphers)
    classifier_names = select(classifiers, selection.classifiers)
    attack_names = select(attacks, selection.attacks)
    cells: list[Cell] = []
    for dataset in config["datasets"]:
        for cipher in cipher_names:
            condition = key_condition(config, cipher)
            cells.append(Cell("key_space", dataset, cipher, key_condition=condition))
        for cipher in cipher_names:
            condition = key_condition(config, cipher)
            paired = config["pairings"].get(cipher, config["default_classifiers"])
            cells += [Cell("accuracy", dataset, cipher, classifier=c, key_condition=condition) for c in paired if c in classifier_names]
        for cipher in cipher_names:
            condition = key_condition(config, cipher)
            cells += [Cell("security", dataset, cipher, attack=a, key_condition=condition) for a in attack_names]
    return [cell for cell in cells if cell.kind in selection.kinds]


class Runner:
    """Runs the cells of one configuration into one run folder."""

    def __init__(
        self,
        config: dict[str, Any],
        out: str | Path,
        *,
        device: str = "cpu",
        refresh_cache: bool = False,
        cell_progress: Callable[[Cell], ProgressCallback] | None = None,
    ) -> None:
        self.config = config
        self.store = ResultStore(out)
        self.device = device
        self.refresh_cache = refresh_cache
        self.cache_dir = Path(out) / "cache"
        self.cell_progress = cell_progress or (lambda cell: None)
        self._data: dict[tuple, ImageDataset] = {}
        self._ciphers: dict[tuple, Cipher] = {}

    # -- shared inputs --------------------------------------------------------------------
    def image_size(self, cipher: str) -> tuple[int, int]:
        size = self.config["cipher_image_size"].get(cipher, self.config["image_size"])
        return int(size[0]), int(size[1])

    def dataset(self, name: str, split: str, image_size: tuple[int, int]) -> ImageDataset:
        key = (name, split, image_size)
        if key not in self._data:
            self._data[key] = load_dataset(
                name,
                split,
                image_size,
                n=self.config[f"n_{split}"],
                seed=derive_seed(self.config["seed"], "data"),
                data_dir=self.config["data_dir"],
            )
        return self._data[key]

    def accuracy_image_size(self, cipher: str, classifier: str) -> tuple[int, int]:
        """A classifier's own size (the seed's ViT at 224) wins over the cipher's."""
        size = self.config["classifier_image_size"].get(classifier)
        return (int(size[0]), int(size[1])) if size else self.image_size(cipher)

    def victim_cipher(self, name: str, image_size: tuple[int, int] | None = None) -> Cipher:
        """The user's cipher: a key drawn from the master seed for this cipher name only."""
        image_size = image_size or self.image_size(name)
        key = (name, image_size)
        if key not in self._ciphers:
            options = cipher_options(self.config, name)
            block_size = options.pop("block_size", None)
            seed = derive_seed(self.config["seed"], "victim-key", name)
            self._ciphers[key] = ciphers.get(name).from_seed(seed, image_size=image_size, block_size=block_size, **options)
        return self._ciphers[key]

    def provenance(self, cell: Cell) -> dict[str, Any]:
        return {
            "kind": cell.kind,
            "dataset": cell.dataset,
            "cipher": cell.cipher,
            "classifier": cell.classifier,
            "attack": cell.attack,
            "key_condition": cell.key_condition,
            "preset": self.config["preset"],
            "seed": self.config["seed"],
        }

    # -- running --------------------------------------------------------------------------
    def run(
        self, cells: Iterable[Cell], on_cell_done: Callable[[Cell, str], None] | None = None, *, workers: int = 1
    ) -> int:
        """Run the unfinished cells (``workers`` > 1: that many processes); returns the failed count.

        Cells are stored by this process only, as they finish, so a parallel run writes the
        same files as a serial one; a cell that reuses another's model (``vit_keyed`` the plain
        ``vit``) waits for it, so no two processes train the same cached network.
        """
        frame = self.store.load()
        finished = self.store.finished_cells(frame)
        todo = []
        for cell in cells:
            if cell.id in finished:
                if on_cell_done:
                    on_cell_done(cell, "cached")
            else:
                todo.append(cell)

        def store(cell: Cell, rows: list[dict[str, Any]], elapsed: float) -> None:
            nonlocal frame
            for row in rows:
                row.setdefault("elapsed_s", elapsed)
            frame = self.store.replace_cell(frame, rows)
            if on_cell_done:
                on_cell_done(cell, rows[0]["status"])

        if workers > 1 and len(todo) > 1:
            self._run_parallel(todo, workers, store)
        else:
            for cell in todo:
                started = time.perf_counter()
                try:
                    rows = self.run_cell(cell)
                except Exception as exc:  # a failing cell is recorded and the grid goes on
                    rows = self.failed(cell, exc, traceback.format_exc())
                store(cell, rows, time.perf_counter() - started)
        return int(frame[frame["status"] == "failed"][["kind", "dataset", "cipher", "classifier", "attack"]].drop_duplicates().shape[0])

    def _run_parallel(self, todo: list[Cell], workers: int, store: Callable[[Cell, list[dict[str, Any]], float], None]) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        planned = {cell.id for cell in todo}
        done: set[tuple[str, ...]] = set()
        pending, running = list(todo), {}
        context = multiprocessing.get_context("spawn")  # no fork of a process whose torch threads already run
        init = (self.config, str(self.store.folder), self.device, self.refresh_cache, torch.get_num_threads())
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
            while pending or running:
                for cell in list(pending):
                    if len(running) >= workers:
                        break
                    needed = self.dependency(cell)
                    if needed is not None and needed.id in planned and needed.id not in done:
                        continue
                    pending.remove(cell)
                    running[pool.submit(_compute_in_worker, cell)] = cell
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = running.pop(future)
                    output, failure, elapsed = future.result()
                    if output is not None:
                        self.record(cell, output)
                        rows = output.rows
                    else:
                        rows = self.failed(cell, *failure)
                    store(cell, rows, elapsed)
                    done.add(cell.id)

    def dependency(self, cell: Cell) -> Cell | None:
        """The cell whose trained model this one reuses (``vit_keyed`` -> plain ``vit``), if any."""
        base = getattr(classifiers.get(cell.classifier), "plain_base", None) if cell.kind == "accuracy" else None
        return Cell("accuracy", cell.dataset, "plain", classifier=base) if base else None

    def failed(self, cell: Cell, exc: BaseException | str, trace: str) -> list[dict[str, Any]]:
        """The row of a failed cell; its traceback goes to errors.log."""
        message = exc if isinstance(exc, str) else _one_line(exc)
        with (self.store.folder / "errors.log").open("a") as log:
            log.write(f"== {cell.label}\n{trace}\n")
        return [{**self.provenance(cell), "status": "failed", "metric": "error", "note": message}]

    def run_cell(self, cell: Cell) -> list[dict[str, Any]]:
        """Compute one cell and store its per-image scores and examples; returns its rows."""
        output = self.compute(cell)
        self.record(cell, output)
        return output.rows

    def compute(self, cell: Cell) -> CellOutput:
        handler = {"key_space": self._key_space_cell, "accuracy": self._accuracy_cell, "security": self._security_cell}
        return handler[cell.kind](cell)

    def record(self, cell: Cell, output: CellOutput) -> None:
        """Store a cell's per-image scores and example images (its rows go to results.csv)."""
        if output.per_image is not None:
            self.store.replace_per_image(self.provenance(cell), output.per_image)
        for name, images, scores in output.examples:
            self.store.save_examples(self.store.example_path(cell.dataset, cell.cipher, name), images, scores)

    def _key_space_cell(self, cell: Cell) -> CellOutput:
        cipher = self.victim_cipher(cell.cipher)
        base = {**self.provenance(cell), "status": "ok"}
        rows = [
            {**base, "metric": "key_space_log2", "value": cipher.key_space_log2()},
            {**base, "metric": "effective_key_space_log2", "value": cipher.effective_key_space_log2()},
            {**base, "metric": "block_size", "value": float(cipher.block_size)},
        ]
        test = self.dataset(cell.dataset, "test", self.image_size(cell.cipher))
        count = min(int(self.config["examples"]), len(test))
        plain = test.images[:count]
        encrypted = cipher.encrypt(plain, torch.arange(count))
        scores = ssim(encrypted, plain).numpy() if encrypted.shape == plain.shape else None
        return CellOutput(rows, examples=[("plain", plain.numpy(), None), ("encrypted", encrypted.numpy(), scores)])

    def _accuracy_cell(self, cell: Cell) -> CellOutput:
        from harness import training

        # a derived classifier (vit_keyed) reuses the training settings, size and seed of the network
        # it is derived from, so it transforms the very model of that network's plain cell
        trained = getattr(classifiers.get(cell.classifier), "plain_base", None) or cell.classifier
        size = self.accuracy_image_size(cell.cipher, trained)
        cipher = self.victim_cipher(cell.cipher, size)
        train, test = self.dataset(cell.dataset, "train", size), self.dataset(cell.dataset, "test", size)
        options = dict(self.config["classifiers"].get(trained) or {})
        results = []
        for repeat in range(int(self.config["accuracy_seeds"])):
            # repeat 0 keeps the seed (and cache entry) of a single-seed run; later repeats derive their own
            purpose = ("train", trained) if repeat == 0 else ("train", trained, "repeat", repeat)
            config = training.TrainConfig(**{"seed": derive_seed(self.config["seed"], *purpose), **options})
            results.append(training.run_accuracy_cell(
                cell.classifier,
                cipher,
                train,
                test,
                config,
                cache_dir=self.cache_dir,
                device=self.device,
                refresh_cache=self.refresh_cache,
                progress=self.cell_progress(cell),
            ))
        correct = torch.stack([r.correct for r in results], dim=1).double().numpy()  # [images, seeds]
        mean, low, high = bootstrap_mean_interval(correct, seed=derive_seed(self.config["seed"], "bootstrap", *cell.id))
        base = {**self.provenance(cell), "status": "ok", "n": len(test)}
        rows = [{**base, "metric": "accuracy", "value": mean, "ci95_low": low, "ci95_high": high,
                 "note": f"95% bootstrap interval over test images; {len(results)} training seed(s)"}]
        if len(results) > 1:
            rows.append({**base, "metric": "accuracy_seed_sd", "value": float(np.std([r.accuracy for r in results], ddof=1))})
        rows += [{**base, "metric": name, "value": value} for name, value in sorted(results[0].extra.items())]
        cached = all(r.cached for r in results)
        rows.append({**base, "metric": "train_seconds", "value": sum(r.train_seconds for r in results), "note": "cached" if cached else ""})
        return CellOutput(rows, per_image={"correct": correct.mean(1)})

    def _security_cell(self, cell: Cell) -> CellOutput:
        from attacks.base import AttackConfig, CipherFamily
        from attacks.evaluate import run_security_cell

        cipher = self.victim_cipher(cell.cipher)
        size = self.image_size(cell.cipher)
        options = cipher_options(self.config, cell.cipher)
        block_size = options.pop("block_size", None)
        family = CipherFamily(name=cell.cipher, image_size=size, block_size=cipher.block_size if block_size is None else block_size, options=options)
        attack_options = dict(self.config["attacks"].get(cell.attack) or {})
        attack_options.setdefault("seed", derive_seed(self.config["seed"], "attack", cell.attack))
        attack_options["known_pairs"] = self.config["known_pairs"]
        base = self.provenance(cell)
        reason = attacks.get(cell.attack).applies_to(family)
        if reason:
            return CellOutput([{**base, "status": "n/a", "metric": "ssim", "note": reason}])
        victim = self.dataset(cell.dataset, "test", size)
        attacker = self.dataset(cell.dataset, "attacker", size)
        # the provider holds the encrypted training set too: attacks on victim ciphertexts pool it
        pool = self.dataset(cell.dataset, "train", size).images if attacks.get(cell.attack).uses_victim_ciphertexts else None
        result = run_security_cell(
            cell.attack,
            family,
            cipher,
            victim.images,
            attacker.images,
            AttackConfig(**attack_options),
            cache_dir=self.cache_dir,
            pool_images=pool,
            ladder=tuple(int(c) for c in self.config["ciphertext_ladder"]),
            device=self.device,
            refresh_cache=self.refresh_cache,
            progress=self.cell_progress(cell),
        )
        count = min(int(self.config["examples"]), result.restored.shape[0])
        ok = {**base, "status": "ok", "note": result.note}
        identified = result.identified.double().cpu().numpy()
        rate, low, high = wilson_interval(float(identified.sum()), identified.size)
        rows = [
            _mean_row(ok, "ssim", result.ssim),
            _mean_row(ok, "abs_ssim", result.ssim.abs()),
            _mean_row(ok, "psnr", result.psnr),
            {**ok, "metric": "identification", "value": rate, "ci95_low": low, "ci95_high": high, "n": identified.size,
             "note": f"top-1 among {identified.size} images (chance {1 / identified.size:.4f}); Wilson interval"},
        ]
        rows += [{**ok, "metric": name, "value": float(value)} for name, value in sorted(result.extra.items())]
        rows += [{**ok, "metric": "ssim_vs_ciphertexts", "value": value, "n": seen, "note": "n = victim ciphertexts the attack saw"}
                 for seen, value in result.curve]
        psnr_values = np.minimum(result.psnr.double().cpu().numpy(), PSNR_CAP_DB)
        return CellOutput(
            rows,
            per_image={"ssim": result.ssim.cpu().numpy(), "psnr": psnr_values, "identified": identified},
            examples=[(cell.attack, result.restored[:count].cpu().numpy(), result.ssim[:count].cpu().numpy())],
        )


#: PSNR of an exact restoration is infinite; means cap it here so one exact image does not make the mean inf
PSNR_CAP_DB = 100.0


def _mean_row(base: dict[str, Any], metric: str, values: torch.Tensor) -> dict[str, Any]:
    """Mean with a normal-approximation 95% interval over images (infinite values capped, noted)."""
    array = values.detach().double().cpu().numpy()
    note = base.get("note", "")
    infinite = ~np.isfinite(array)
    if infinite.any():
        array = np.minimum(array, PSNR_CAP_DB)
        note = "; ".join(filter(None, [note, f"{metric} capped at {PSNR_CAP_DB:g} for exact restorations"]))
    mean, low, high = mean_interval(array)
    if infinite.any():
        low = high = float("nan")
    return {**base, "metric": metric, "value": mean, "ci95_low": low, "ci95_high": high, "n": int(array.size), "note": note}


#: the runner of a worker process (``Runner.run`` with several workers)
_WORKER: Runner | None = None


def _init_worker(config: dict[str, Any], out: str, device: str, refresh_cache: bool, threads: int) -> None:
    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = Runner(config, out, device=device, refresh_cache=refresh_cache)


def _compute_in_worker(cell: Cell) -> tuple[CellOutput | None, tuple[str, str] | None, float]:
    """One cell in a worker: its output, or (message, traceback) of its failure; and its seconds."""
    assert _WORKER is not None
    started = time.perf_counter()
    try:
        return _WORKER.compute(cell), None, time.perf_counter() - started
    except Exception as exc:  # reported to the parent, which records the failed cell
        return None, (_one_line(exc), traceback.format_exc()), time.perf_counter() - started


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


# -- run metadata -----------------------------------------------------------------------------
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("scramblebench", "torch", "torchvision", "timm", "numpy", "scikit-image", "pandas", "opencv-python-headless"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def plugins() -> dict[str, Any]:
    """Registered plugins with their origin, and plugins that failed to load."""
    listing: dict[str, Any] = {}
    for registry in (ciphers, classifiers, attacks):
        listing[registry.kind] = {n: registry.entry(n).origin for n in registry.names()}
        if registry.load_errors:
            listing[f"{registry.kind}_load_errors"] = dict(registry.load_errors)
    return listing


def run_metadata(config: dict[str, Any], runner: Runner, cells: list[Cell], device: str, started: datetime) -> dict[str, Any]:
    """Everything needed to reproduce a run and render its report; never a key."""
    names = sorted({c.cipher for c in cells})
    key_spaces = {}
    for name in names:
        cipher = runner.victim_cipher(name)
        key_spaces[name] = {
            "image_size": list(runner.image_size(name)),
            "block_size": cipher.block_size,
            "nominal": exact_int_string(cipher.key_space()),
            "effective": exact_int_string(cipher.effective_key_space()),
            "traits": {**dataclasses.asdict(cipher.traits), "per_image_key": cipher.per_image_key, "identity": cipher.traits.identity},
        }
    master = config["seed"]
    return {
        "config": config,
        "seeds": {
            "master": master,
            "data": derive_seed(master, "data"),
            "victim_keys": "derive_seed(master, 'victim-key', cipher)",
            "training": "derive_seed(master, 'train', classifier)",
            "attacks": "derive_seed(master, 'attack', attack)",
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "plugins": plugins(),
        "attacks": {
            n: {
                "threat_model": getattr(attacks.get(n), "threat_model", "ciphertext-only"),
                "baseline": bool(getattr(attacks.get(n), "baseline", False)),
                "statistical": bool(getattr(attacks.get(n), "statistical", False)),
            }
            for n in attacks.names()
        },
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "started": started.isoformat(timespec="seconds"),
        "key_spaces": key_spaces,
        "cells": len(cells),
    }


def now() -> datetime:
    return datetime.now(timezone.utc)
