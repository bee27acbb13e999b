"""The benchmark runner: expand a configuration into cells, run the missing ones, store rows.

A cell is (dataset, cipher, classifier) for accuracy, (dataset, cipher, attack) for security and
(dataset, cipher) for the key space and example images.  A cell's identity (:func:`cell_hash`)
is a digest of its coordinates, the configuration parts it reads (:func:`cell_inputs`) and the
code it runs (:func:`code_version`); a cell with a verified record of its identity in the run
folder is skipped (resume), any other is computed.  Every result is one checksummed record
(``cells/<hash>.json``); results.csv and per_image.csv are compiled from the records.  A
failing cell is recorded with its error and the run goes on.  Executors: local (serial or
``workers`` processes) and Ray (:mod:`harness.run.executors`); :func:`shard_cells` splits a grid.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import inspect
import json
import platform
import subprocess
import sys
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
from harness.results import DamagedRecordError, ResultStore, cell_id, encode_array, exact_int_string
from harness.stats import bootstrap_mean_interval

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# -- cell identity ----------------------------------------------------------------------------
#: bump when the meaning of a cell's inputs or rows changes in a way the sources do not show
IDENTITY_FORMAT = 1


def _normalised(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists), for comparing stored inputs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _size(value: Any) -> list[int]:
    return [int(value[0]), int(value[1])]


def cell_inputs(config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """Exactly the parts of the resolved configuration that ``cell`` reads.

    The preset name and master seed (they are in every row), the dataset with the size of every
    split the cell loads (and ``data_dir`` for a dataset read from disk), the cipher's options and
    the image size it runs at, and per kind: ``examples`` (key space); the trained network's
    ``classifiers`` section and ``accuracy_seeds`` (accuracy; ``vit_keyed`` reads ``vit``'s); the
    attack's section, ``known_pairs``, ``ciphertext_ladder`` and ``examples`` (security).  Keys
    the cell does not read (``pairings``, ``verdict_margin``, other ciphers' options...) are
    not part of it, so changing them recomputes nothing.
    """
    inputs: dict[str, Any] = {"preset": config["preset"], "seed": config["seed"], "dataset": cell.dataset}
    if cell.dataset != "natural":  # the embedded photographs do not read data_dir
        inputs["data_dir"] = None if config.get("data_dir") is None else str(config["data_dir"])
    cipher = {"name": cell.cipher, "options": cipher_options(config, cell.cipher)}
    default_size = config["cipher_image_size"].get(cell.cipher, config["image_size"])
    if cell.kind == "key_space":
        splits = ["test"]
        cipher["image_size"] = _size(default_size)
        inputs["examples"] = config["examples"]
    elif cell.kind == "accuracy":
        trained = getattr(classifiers.get(cell.classifier), "plain_base", None) or cell.classifier
        splits = ["train", "test"]
        cipher["image_size"] = _size(config["classifier_image_size"].get(trained) or default_size)
        inputs["classifier"] = {"name": cell.classifier, "trained": trained, "settings": config["classifiers"].get(trained) or {}}
        inputs["accuracy_seeds"] = config["accuracy_seeds"]
    elif cell.kind == "security":
        attack = attacks.get(cell.attack)
        splits = ["test", "attacker"] + (["train"] if getattr(attack, "uses_victim_ciphertexts", False) else [])
        cipher["image_size"] = _size(default_size)
        inputs["attack"] = {"name": cell.attack, "settings": config["attacks"].get(cell.attack) or {}}
        inputs["known_pairs"] = config["known_pairs"]
        inputs["ciphertext_ladder"] = [int(c) for c in config["ciphertext_ladder"]]
        inputs["examples"] = config["examples"]
    else:
        raise ValueError(f"unknown cell kind {cell.kind!r}")
    inputs["splits"] = {split: config[f"n_{split}"] for split in sorted(splits)}
    inputs["cipher"] = cipher
    return _normalised(inputs)


#: core modules every cell runs, relative to the repository root
_CORE_SOURCES = ("harness/data.py", "harness/lazy.py", "harness/keys.py", "harness/metrics.py", "harness/stats.py", "ciphers/base.py")
_KIND_SOURCES = {
    "key_space": (),
    "accuracy": ("harness/training.py", "harness/feeding.py", "harness/cache.py", "harness/classifiers"),
    "security": ("attacks/base.py", "harness/run/security.py", "harness/cache.py"),
}


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def _helper_files(module_file: Path) -> list[Path]:
    """A plugin's own module and its package's shared helpers (``base.py``, ``_*.py``)."""
    folder = module_file.parent
    return [module_file, *sorted(p for p in folder.glob("*.py") if p.name == "base.py" or (p.name.startswith("_") and p.name != "__init__.py"))]


def _plugin_file(registry: Registry, name: str) -> Path | None:
    try:
        source = inspect.getsourcefile(registry.get(name))
    except (TypeError, KeyError):
        return None
    return Path(source).resolve() if source else None


#: the Runner methods that compute a cell: their source text is part of every cell's code version,
#: so editing the runner's scheduling, storage or command line recomputes nothing
_COMPUTE_FUNCTIONS = ("compute", "_key_space_cell", "_accuracy_cell", "_security_cell", "dataset", "victim_cipher",
                      "image_size", "accuracy_image_size", "provenance")


def code_version(cell: Cell) -> dict[str, str]:
    """The code a cell runs: the scramblebench version and one digest of the sources it executes.

    The digest covers the core modules (data, lazy collections, keys, metrics, stats, the cipher base), the
    runner's cell-computing methods, the modules of the cell's cipher, classifier (the whole
    ``harness/classifiers`` package for accuracy cells, with training) or attack (with
    ``attacks/base.py``, ``harness/run/security.py`` and the package's ``_*.py`` helpers), third-party
    plugins' defining modules included.  Editing a report, the command line, the docs, the tests
    or another cipher's module changes no cell's identity.  Library versions and the git commit
    are recorded in the cell's record but are not part of the identity.
    """
    key = (cell.kind, cell.cipher, cell.classifier, cell.attack)
    if key not in _CODE_VERSIONS:
        files: list[Path] = [REPO_ROOT / p for p in _CORE_SOURCES]
        for entry in _KIND_SOURCES[cell.kind]:
            path = REPO_ROOT / entry
            files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
        plugin_files = [_plugin_file(ciphers, cell.cipher)]
        if cell.kind == "accuracy":
            base = getattr(classifiers.get(cell.classifier), "plain_base", None)
            plugin_files += [_plugin_file(classifiers, cell.classifier), _plugin_file(classifiers, base) if base else None]
        if cell.kind == "security":
            plugin_files.append(_plugin_file(attacks, cell.attack))
        for plugin in filter(None, plugin_files):
            files += _helper_files(plugin)
        digest = hashlib.sha256()
        for path in sorted(set(p.resolve() for p in files)):
            name = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name
            digest.update(f"{name}\0{_file_digest(path)}\n".encode())
        digest.update(_compute_source_digest().encode())
        _CODE_VERSIONS[key] = {"scramblebench": scramblebench_version(), "sources": digest.hexdigest()[:16]}
    return dict(_CODE_VERSIONS[key])


_CODE_VERSIONS: dict[tuple[str, ...], dict[str, str]] = {}


def _compute_source_digest() -> str:
    """Digest of the source of the runner's cell-computing functions, as this module defines them
    (taken from the module's objects captured at import, so a monkeypatched method changes nothing)."""
    global _COMPUTE_DIGEST
    if _COMPUTE_DIGEST is None:
        text = "".join(inspect.getsource(function) for function in _COMPUTE_OBJECTS)
        _COMPUTE_DIGEST = hashlib.sha256(text.encode()).hexdigest()
    return _COMPUTE_DIGEST


_COMPUTE_DIGEST: str | None = None


def cell_hash(cell: Cell, inputs: dict[str, Any], code: dict[str, str]) -> str:
    """The cell's identity: a digest of its coordinates, the inputs it reads and its code version."""
    text = json.dumps({"format": IDENTITY_FORMAT, "cell": dataclasses.asdict(cell), "inputs": inputs, "code": code},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def scramblebench_version() -> str:
    """The installed distribution's version, else the one in this checkout's pyproject.toml."""
    try:
        return metadata.version("scramblebench")
    except metadata.PackageNotFoundError:
        import tomllib

        try:
            return str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


# -- shards -----------------------------------------------------------------------------------
def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1-based: 1/4 ... 4/4) -> (i, n); ValueError otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be i/n with whole numbers, 1 <= i <= n (e.g. 1/4), got {text!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"--shard i/n needs 1 <= i <= n (shards are 1-based: 1/{max(count, 1)} ... {max(count, 1)}/{max(count, 1)}), got {text!r}")
    return index, count


def shard_of(cell: Cell, count: int, dependency: Callable[[Cell], Cell | None]) -> int:
    """The 1-based shard of ``cell`` among ``count``: a stable digest of its coordinates (those of
    the cell it depends on, if any, so ``vit_keyed`` goes with its plain ``vit``)."""
    root = dependency(cell) or cell
    digest = hashlib.sha256("\0".join(root.id).encode()).hexdigest()
    return int(digest, 16) % count + 1


def shard_cells(cells: Iterable[Cell], index: int, count: int, dependency: Callable[[Cell], Cell | None]) -> list[Cell]:
    """The cells of shard ``index`` of ``count`` (1-based), in plan order."""
    return [cell for cell in cells if shard_of(cell, count, dependency) == index]


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
                needed = self.dependency(cell)
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
                    current = _normalised(self.inputs(cell))
                except Exception:  # a cell of a plugin that is not installed now, or another grid
                    continue
                if _normalised(record["inputs"]) != current:
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
            if _normalised(existing.get("config")) == _normalised(run["config"]):
                run["key_spaces"] = {**existing.get("key_spaces", {}), **run["key_spaces"]}
            self.store.write_run(run)

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
        plain = test.batch(torch.arange(count))
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
        if not train.classes:
            note = f"dataset {cell.dataset} has no labels: accuracy cells need a labelled dataset (natural, cifar10, cifar100, folder)"
            return CellOutput([{**self.provenance(cell), "status": "n/a", "metric": "accuracy", "note": note}])
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
        from harness.run.security import run_security_cell, security_rows

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
        # lazy splits: CIFAR stays at 32 x 32 and is resized a chunk at a time (bounded memory)
        victim = self.dataset(cell.dataset, "test", size).lazy(self.device)
        attacker = self.dataset(cell.dataset, "attacker", size).lazy(self.device)
        # the provider holds the encrypted training set too: attacks on victim ciphertexts pool it
        pool = self.dataset(cell.dataset, "train", size).lazy(self.device) if attacks.get(cell.attack).uses_victim_ciphertexts else None
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
        rows, per_image, examples = security_rows(base, result, count)
        return CellOutput(rows, per_image=per_image, examples=examples)


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


# -- run metadata -----------------------------------------------------------------------------
def git_commit(root: Path = REPO_ROOT) -> str:
    """scramblebench's own commit: only when ``root`` (where its packages live) is the top of a git
    checkout; an installed copy inside someone else's repository (a venv in a project) has none."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return "not a checkout (installed package)"
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
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


def split_sizes(config: dict[str, Any], runner: Runner) -> dict[str, dict[str, int | None]]:
    """Images per dataset and split as loaded (a folder of photographs has what it has), for the report."""
    sizes: dict[str, dict[str, int | None]] = {}
    for dataset in config["datasets"]:
        sizes[dataset] = {}
        for split in ("train", "test", "attacker"):
            try:
                sizes[dataset][split] = len(runner.dataset(dataset, split, tuple(config["image_size"])))
            except (OSError, ValueError):  # the cells that need it fail with the reason
                sizes[dataset][split] = None
    return sizes


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
        "split_sizes": split_sizes(config, runner),
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
                "learned": bool(getattr(attacks.get(n), "learned", False)),
                "key_recovery": bool(getattr(attacks.get(n), "key_recovery", False)),
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


#: the functions whose source is part of every cell's code version (see :func:`code_version`)
_COMPUTE_OBJECTS = [getattr(Runner, name) for name in _COMPUTE_FUNCTIONS]
