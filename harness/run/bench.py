"""The benchmark runner: run the missing cells of a plan, store their records, compile results.

A cell with a verified record of its identity (:mod:`harness.run.identity`) in the run folder is
skipped (resume), any other is computed.  Every result is one checksummed record
(``cells/<hash>.json``); results.csv and per_image.csv are compiled from the records.  A
failing cell is recorded with its error and the run goes on.  Executors: local (serial or
``workers`` processes) and Ray (:mod:`harness.run.executors`).
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ciphers.base import Cipher
from harness.data import ImageDataset, load_dataset
from harness.keys import derive_seed
from harness.metrics import ssim
from harness.progress import ProgressCallback
from harness.registry import attacks, ciphers
from harness.results import DamagedRecordError, ResultStore, encode_array
from harness.run.identity import cell_hash, cell_inputs, code_version, normalised
from harness.run.plan import Cell, accuracy_image_size, cipher_options, dependency, image_size, row_base, trained_classifier
from harness.run.plan import image_size as plan_image_size
from harness.run.provenance import git_commit
from harness.stats import bootstrap_mean_interval, mean_interval, wilson_interval


@dataclass
class CellOutput:
    """What one cell computed: its result rows, per-image scores (metric -> values by image id) and
    example images (name, uint8 images, their SSIM or None); the runner stores them."""

    rows: list[dict[str, Any]]
    per_image: dict[str, np.ndarray] | None = None
    examples: list[tuple[str, np.ndarray, np.ndarray | None]] = field(default_factory=list)



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
        self._hashes: dict[Cell, str] = {}
        self._git: str | None = None

    # -- shared inputs --------------------------------------------------------------------
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

    def victim_cipher(self, name: str, image_size: tuple[int, int] | None = None) -> Cipher:
        """The user's cipher: a key drawn from the master seed for this cipher name only."""
        image_size = image_size or plan_image_size(self.config, name)
        key = (name, image_size)
        if key not in self._ciphers:
            options = cipher_options(self.config, name)
            block_size = options.pop("block_size", None)
            seed = derive_seed(self.config["seed"], "victim-key", name)
            self._ciphers[key] = ciphers.get(name).from_seed(seed, image_size=image_size, block_size=block_size, **options)
        return self._ciphers[key]

    # -- identity -------------------------------------------------------------------------
    def inputs(self, cell: Cell) -> dict[str, Any]:
        """The parts of the resolved configuration that ``cell`` reads (see :func:`cell_inputs`)."""
        return cell_inputs(self.config, cell)

    def identity(self, cell: Cell) -> str:
        """The cell's hash: its coordinates, :meth:`inputs` and the code version of what it runs."""
        if cell not in self._hashes:
            self._hashes[cell] = cell_hash(cell, self.inputs(cell), code_version(cell))
        return self._hashes[cell]

    def finished(self, cells: Iterable[Cell]) -> set[Cell]:
        """The cells with a verified, not failed record of their identity in the run folder."""
        done = set()
        for cell in cells:
            try:
                record = self.store.read_record(self.store.record_path(self.identity(cell)))
            except (FileNotFoundError, DamagedRecordError):
                continue
            if record["status"] != "failed":
                done.add(cell)
        return done

    # -- running --------------------------------------------------------------------------
    def run(
        self,
        cells: Iterable[Cell],
        on_cell_done: Callable[[Cell, str, float], None] | None = None,
        *,
        workers: int = 1,
        executor: str = "local",
        address: str | None = None,
    ) -> int:
        """Run the cells without a finished record (``workers`` > 1: that many processes;
        ``executor="ray"``: one Ray task per cell; ``"torchrun"``: this is rank 0 of a torchrun
        launch, :mod:`harness.run.distributed`); returns how many of them failed.

        Every cell's result is written by this process only, as one checksummed record, and the
        compiled files are rebuilt from all records after every cell and at the end; a cell that
        reuses another's model (``vit_keyed`` the plain ``vit``) waits for it, so no two
        processes train the same cached network.
        """
        cells = list(cells)
        planned = {self.identity(c) for c in cells}
        records, damaged = self.store.scan_records()
        for path, reason in damaged:
            what = "that cell is recomputed" if path.stem in planned else "ignored (not a cell of this run)"
            self.warn(f"{reason}; {what}")
        good = {r["cell_hash"]: r for r in records}
        todo = []
        for cell in cells:
            record = good.get(self.identity(cell))
            if record is not None and record["status"] != "failed":
                self.store.touch_record(record["cell_hash"])  # the current record of its coordinates
                if on_cell_done:
                    on_cell_done(cell, "cached", 0.0)
            else:
                todo.append(cell)
        self.compile()
        failures = 0

        def finish(cell: Cell, output: CellOutput | None, failure: tuple[str, str] | None, elapsed: float) -> None:
            nonlocal failures
            if output is None:
                assert failure is not None
                output = CellOutput(self.failed(cell, *failure))
            self.record(cell, output, elapsed)
            status = "failed" if any(r.get("status") == "failed" for r in output.rows) else output.rows[0]["status"]
            failures += status == "failed"
            if on_cell_done:
                on_cell_done(cell, status, elapsed)

        if executor == "ray":
            from harness.run.executors import run_ray

            run_ray(self, todo, finish, address=address)
        elif executor == "torchrun":
            from harness.run.distributed import run_leader

            run_leader(self, cells, todo, finish)
        elif executor != "local":
            raise ValueError(f"unknown executor {executor!r}; choose local, ray or torchrun")
        elif workers > 1 and len(todo) > 1:
            self._run_parallel(todo, workers, finish)
        else:
            for cell in todo:
                finish(cell, *self.compute_guarded(cell))
        self.compile()
        return failures

    def compute_guarded(self, cell: Cell) -> tuple[CellOutput | None, tuple[str, str] | None, float]:
        """:meth:`compute`, catching its failure: (output, None, seconds) or (None, (message, traceback), seconds)."""
        started = time.perf_counter()
        try:
            return self.compute(cell), None, time.perf_counter() - started
        except Exception as exc:  # a failing cell is recorded and the grid goes on
            return None, (_one_line(exc), traceback.format_exc()), time.perf_counter() - started

    def schedule(
        self,
        todo: list[Cell],
        submit: Callable[[Cell], Any],
        wait_any: Callable[[list[Any]], list[tuple[Any, Any]]],
        finish: Callable[..., None],
        capacity: int | None = None,
    ) -> None:
        """Submit cells as their dependencies finish (at most ``capacity`` at once); ``wait_any``
        returns (handle, (output, failure, seconds)) of finished handles, which go to ``finish``."""
        planned = {cell.id for cell in todo}
        done: set[tuple[str, ...]] = set()
        pending, running = list(todo), {}
        while pending or running:
            for cell in list(pending):
                if capacity is not None and len(running) >= capacity:
                    break
                needed = dependency(cell)
                if needed is not None and needed.id in planned and needed.id not in done:
                    continue
                pending.remove(cell)
                running[submit(cell)] = cell
            for handle, result in wait_any(list(running)):
                cell = running.pop(handle)
                finish(cell, *result)
                done.add(cell.id)

    def _run_parallel(self, todo: list[Cell], workers: int, finish: Callable[..., None]) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")  # no fork of a process whose torch threads already run
        init = (self.config, str(self.store.folder), self.device, self.refresh_cache, torch.get_num_threads())
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
            def wait_any(futures: list[Any]) -> list[tuple[Any, Any]]:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                return [(future, future.result()) for future in finished]

            self.schedule(todo, lambda cell: pool.submit(_compute_in_worker, cell), wait_any, finish, capacity=workers)

    def failed(self, cell: Cell, exc: BaseException | str, trace: str) -> list[dict[str, Any]]:
        """The row of a failed cell; its traceback goes to errors.log."""
        message = exc if isinstance(exc, str) else _one_line(exc)
        with (self.store.folder / "errors.log").open("a") as log:
            log.write(f"== {cell.label}\n{trace}\n")
        return [{**row_base(self.config, cell), "status": "failed", "metric": "error", "note": message}]

    def warn(self, message: str) -> None:
        """A warning line on stderr and in errors.log."""
        print(f"scramblebench: warning: {message}", file=sys.stderr, flush=True)
        self.store.folder.mkdir(parents=True, exist_ok=True)
        with (self.store.folder / "errors.log").open("a") as log:
            log.write(f"== warning\n{message}\n")

    def run_cell(self, cell: Cell) -> list[dict[str, Any]]:
        """Compute one cell, store its record and compile the run folder; returns its rows."""
        started = time.perf_counter()
        output = self.compute(cell)
        self.record(cell, output, time.perf_counter() - started)
        return output.rows

    def compute(self, cell: Cell) -> CellOutput:
        handler = {"key_space": self._key_space_cell, "accuracy": self._accuracy_cell, "security": self._security_cell}
        return handler[cell.kind](cell)

    def record(self, cell: Cell, output: CellOutput, elapsed: float = float("nan")) -> dict[str, Any]:
        """Write the cell's record (rows, per-image scores, examples; checksummed), then compile."""
        digest = self.identity(cell)
        rows = [{**row, "elapsed_s": row.get("elapsed_s", elapsed), "cell_hash": digest} for row in output.rows]
        record = {
            "cell_hash": digest,
            "cell": dataclasses.asdict(cell),
            "inputs": self.inputs(cell),
            "code": code_version(cell),
            "status": "failed" if any(r.get("status") == "failed" for r in rows) else str(rows[0]["status"]),
            "rows": rows,
            "per_image": {m: np.asarray(v, dtype=np.float64).tolist() for m, v in (output.per_image or {}).items()},
            "examples": [
                {"name": name, "images": encode_array(np.asarray(images)), "ssim": None if scores is None else np.asarray(scores, dtype=np.float64).tolist()}
                for name, images, scores in output.examples
            ],
            "finished": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "elapsed_s": elapsed,
            "device": self.device,
            "git_commit": self._commit(),
            "host": platform.node(),
        }
        self.store.write_record(record)
        self.compile()
        return record

    def _commit(self) -> str:
        if self._git is None:
            self._git = git_commit()
        return self._git

    def compile(self) -> list[dict[str, Any]]:
        """Rebuild results.csv, per_image.csv and examples/ from the records (under the folder's lock).

        Only records of this configuration count: a record whose inputs differ from what its cell
        reads in ``self.config`` (another seed, n_test, epochs...) is kept in ``cells/`` but left
        out; of several records of one cell (code versions), the newest (file time) wins.
        """
        with self.store.lock():
            records, _ = self.store.scan_records()
            chosen: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = {}
            for record in records:
                try:
                    cell = Cell(**record["cell"])
                    current = normalised(self.inputs(cell))
                except Exception:  # a cell of a plugin that is not installed now, or another grid
                    continue
                if normalised(record["inputs"]) != current:
                    continue
                try:
                    stamp = self.store.record_path(record["cell_hash"]).stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                best = chosen.get(cell.id)
                if best is None or (stamp, record["cell_hash"]) > (best[0], best[1]["cell_hash"]):
                    chosen[cell.id] = (stamp, record)
            ordered = sorted((r for _, r in chosen.values()), key=lambda r: (r["finished"], r["cell_hash"]))
            self.store.write_compiled(ordered)
            return ordered

    def write_run(self, run: dict[str, Any]) -> None:
        """Write run.json; key spaces of another run of this configuration in the folder are kept."""
        with self.store.lock():
            try:
                existing = self.store.read_run()
            except (FileNotFoundError, ValueError):
                existing = {}
            if normalised(existing.get("config")) == normalised(run["config"]):
                run["key_spaces"] = {**existing.get("key_spaces", {}), **run["key_spaces"]}
            self.store.write_run(run)

    def _key_space_cell(self, cell: Cell) -> CellOutput:
        cipher = self.victim_cipher(cell.cipher)
        base = {**row_base(self.config, cell), "status": "ok"}
        rows = [
            {**base, "metric": "key_space_log2", "value": cipher.key_space_log2()},
            {**base, "metric": "effective_key_space_log2", "value": cipher.effective_key_space_log2()},
            {**base, "metric": "block_size", "value": float(cipher.block_size)},
        ]
        test = self.dataset(cell.dataset, "test", image_size(self.config, cell.cipher))
        count = min(int(self.config["examples"]), len(test))
        plain = test.batch(torch.arange(count))
        encrypted = cipher.encrypt(plain, torch.arange(count))
        scores = ssim(encrypted, plain).numpy() if encrypted.shape == plain.shape else None
        return CellOutput(rows, examples=[("plain", plain.numpy(), None), ("encrypted", encrypted.numpy(), scores)])

    def _accuracy_cell(self, cell: Cell) -> CellOutput:
        from harness import training

        # a derived classifier (vit_keyed) reuses the training settings, size and seed of the network
        # it is derived from, so it transforms the very model of that network's plain cell
        trained = trained_classifier(cell.classifier)
        size = accuracy_image_size(self.config, cell.cipher, trained)
        cipher = self.victim_cipher(cell.cipher, size)
        train, test = self.dataset(cell.dataset, "train", size), self.dataset(cell.dataset, "test", size)
        if not train.classes:
            note = f"dataset {cell.dataset} has no labels: accuracy cells need a labelled dataset (natural, cifar10, cifar100, folder)"
            return CellOutput([{**row_base(self.config, cell), "status": "n/a", "metric": "accuracy", "note": note}])
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
        base = {**row_base(self.config, cell), "status": "ok", "n": len(test)}
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
        from harness.run.security import run_security_cell

        cipher = self.victim_cipher(cell.cipher)
        size = image_size(self.config, cell.cipher)
        options = cipher_options(self.config, cell.cipher)
        block_size = options.pop("block_size", None)
        family = CipherFamily(name=cell.cipher, image_size=size, block_size=cipher.block_size if block_size is None else block_size, options=options)
        attack_options = dict(self.config["attacks"].get(cell.attack) or {})
        attack_options.setdefault("seed", derive_seed(self.config["seed"], "attack", cell.attack))
        attack_options["known_pairs"] = self.config["known_pairs"]
        base = row_base(self.config, cell)
        reason = attacks.get(cell.attack).applies_to(family)
        if reason:
            return CellOutput([{**base, "status": "n/a", "metric": "ssim", "note": reason}])
        # lazy splits: CIFAR stays at 32 x 32 and is resized a chunk at a time (bounded memory)
        victim = self.dataset(cell.dataset, "test", size).lazy()
        attacker = self.dataset(cell.dataset, "attacker", size).lazy()
        # the provider holds the encrypted training set too: attacks on victim ciphertexts pool it
        pool = self.dataset(cell.dataset, "train", size).lazy() if attacks.get(cell.attack).uses_victim_ciphertexts else None
        count = int(self.config["examples"])
        result = run_security_cell(
            cell.attack,
            family,
            cipher,
            victim,
            attacker,
            AttackConfig(**attack_options),
            cache_dir=self.cache_dir,
            pool_images=pool,
            ladder=tuple(int(c) for c in self.config["ciphertext_ladder"]),
            device=self.device,
            refresh_cache=self.refresh_cache,
            progress=self.cell_progress(cell),
            keep_restored=count,
        )
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
    return _WORKER.compute_guarded(cell)  # a failure is reported to the parent, which records the failed cell


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
