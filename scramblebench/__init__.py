"""scramblebench: accuracy cost and attack resistance of learnable image ciphers, on one footing.

The public API in one import.  It re-exports the harness (``harness``, ``ciphers``, ``attacks``,
``reports``) and runs grids through the command line's ``main(argv)``, the same code path as
``scramblebench run``; a run folder is read back with :func:`load_run`.

    >>> import tempfile, torch
    >>> import scramblebench as sb
    >>> cipher = sb.create_cipher("le", seed=0, image_size=(16, 16), block_size=4)
    >>> images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    >>> bool((cipher.decrypt(cipher.encrypt(images)) == images).all())
    True
    >>> tiny = {"n_train": 20, "n_test": 20, "n_attacker": 10, "image_size": [16, 16], "known_pairs": 4}
    >>> run = sb.benchmark(tempfile.mkdtemp(), ciphers=["le", "plain"], attacks=["none", "mean_image"],
    ...                    kinds=["key_space", "security"], config=tiny)
    >>> run.exit_code, len(run.failed)
    (0, 0)
    >>> sorted(set(run.results.query("kind == 'security'")["attack"]))
    ['mean_image', 'none']
    >>> run.mean("security", "natural", "plain", "none", "ssim")  # the raw "ciphertext" of plain is the image
    1.0
    >>> run.mean("security", "natural", "le", "none", "ssim") < 0.5  # le's ciphertext hides most structure
    True
    >>> run.report_path.name
    'report.md'

Plugins subclass :class:`Cipher` (or :class:`IndexMapCipher`), :class:`Attack` or
:class:`Classifier` and register with ``ciphers``/``attacks``/``classifiers`` (docs/plugins.md).
One cell: :func:`security_cell` and :func:`accuracy_cell`; a whole preset: ``benchmark(out,
preset="paper", config={"data_dir": ...})``.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import yaml

from attacks.base import Attack, KeyRecoveryAttack
from ciphers.base import Cipher, IndexMapCipher, Traits
from harness.classifiers.base import Classifier
from harness.keys import check_permutation, rng
from harness.registry import attacks, ciphers, classifiers
from harness.restorations import RestorationLog, load_restorations
from harness.results import ResultStore
from reports.markdown import REPORT_FILE, render_report
from reports.verdicts import CIPHERTEXT_ONLY, KNOWN_PLAINTEXT, MODEL_HOLDER, ModelVerdict, model_verdict

__all__ = [
    "CIPHERTEXT_ONLY", "KNOWN_PLAINTEXT", "MODEL_HOLDER", "BenchmarkError", "Run", "accuracy_cell", "attacks", "benchmark", "ciphers",
    "classifiers", "create_cipher", "load_run", "render_report", "security_cell",
    # for plugin authors (docs/plugins.md): the base classes, traits and key helpers
    "Attack", "Cipher", "Classifier", "IndexMapCipher", "KeyRecoveryAttack", "Traits", "check_permutation", "rng",
]


class BenchmarkError(RuntimeError):
    """The command line refused the arguments (exit status 2); the message is its output."""


def create_cipher(name: str, seed: int = 0, image_size: Sequence[int] = (32, 32), block_size: int | None = None, **options: Any):
    """A registered cipher with its key drawn from ``seed`` (``ciphers.names()`` lists them)."""
    return ciphers.get(name).from_seed(seed, image_size=(int(image_size[0]), int(image_size[1])), block_size=block_size, **options)


@dataclass
class Run:
    """A run folder read back: tidy results, the per-image table, run.json, the report."""

    folder: Path
    exit_code: int = 0
    output: list[str] = field(default_factory=list)

    @property
    def store(self) -> ResultStore:
        return ResultStore(self.folder)

    @property
    def results(self) -> pd.DataFrame:
        return self.store.load()

    @property
    def per_image(self) -> pd.DataFrame:
        return self.store.load_per_image()

    @property
    def metadata(self) -> dict[str, Any]:
        return self.store.read_run()

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT_FILE

    @property
    def restorations(self) -> pd.DataFrame:
        """The restoration log's index (a run with ``log_restorations=True``): one row per logged
        security cell; :meth:`restored` reads one cell's archive."""
        return pd.read_csv(RestorationLog(self.store).index_path)

    def restored(self, dataset: str, cipher: str, attack: str) -> dict[str, Any]:
        """One logged cell's arrays: ``restored`` uint8 [N, C, H, W], ``image_id``, ``score_ssim``..."""
        return load_restorations(RestorationLog(self.store).path({"dataset": dataset, "cipher": cipher, "attack": attack}))

    @property
    def failed(self) -> pd.DataFrame:
        frame = self.results
        return frame[frame["status"] == "failed"]

    def mean(self, kind: str, dataset: str, cipher: str, name: str, metric: str) -> float:
        """One stored mean: ``name`` is the classifier (accuracy) or the attack (security); NaN if absent."""
        frame = self.results
        column = "classifier" if kind == "accuracy" else "attack"
        rows = frame[(frame["kind"] == kind) & (frame["dataset"] == dataset) & (frame["cipher"] == cipher)
                     & (frame[column] == name) & (frame["metric"] == metric) & (frame["status"] == "ok")]
        return float(rows["value"].iloc[0]) if len(rows) else math.nan

    def verdict(self, dataset: str, cipher: str, model: str = CIPHERTEXT_ONLY) -> ModelVerdict | None:
        """The report's ✗/✓/? for one cipher and threat model (:mod:`reports.verdicts`)."""
        return model_verdict(self.results, self.per_image, self.metadata, dataset, cipher, model)


def load_run(folder: str | Path) -> Run:
    """Read an existing run folder (results.csv, per_image.csv, run.json)."""
    path = Path(folder)
    if not (path / "results.csv").exists():
        raise FileNotFoundError(f"{path} holds no results.csv: not a scramblebench run folder")
    return Run(path)


class _Tee(io.StringIO):
    def __init__(self, stream: Any) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)

    @property
    def text(self) -> str:
        return self.getvalue()


def _names(values: str | Sequence[str] | None) -> str | None:
    if values is None:
        return None
    return values if isinstance(values, str) else ",".join(values)


def benchmark(
    out: str | Path,
    *,
    preset: str | None = None,
    config: dict[str, Any] | str | Path | None = None,
    datasets: str | Sequence[str] | None = None,
    ciphers: str | Sequence[str] | None = None,
    classifiers: str | Sequence[str] | None = None,
    attacks: str | Sequence[str] | None = None,
    kinds: str | Sequence[str] | None = None,
    seed: int | None = None,
    device: str = "auto",
    progress: str = "none",
    resume: bool = True,
    log_restorations: bool = False,
    isolate: bool = False,
    extra_args: Sequence[str] = (),
) -> Run:
    """Run a grid (missing cells only, unless ``resume=False``) into ``out``, render its report and
    return it read back.  ``config`` is a dict of preset keys (docs/benchmark.md) or a YAML file;
    names are lists or comma strings of names and fnmatch patterns.  A cell that fails is recorded
    (``run.failed``, ``run.exit_code == 1``); arguments the command line refuses raise
    :class:`BenchmarkError`.  ``log_restorations``: keep every restored image of every security
    cell (``run.restorations``, ``run.restored(...)``; the folder then holds the victim's images as
    restored).  The cells run in this process (``--in-process``: a library call that
    needs no ``if __name__ == "__main__"`` guard and stops in pdb); ``isolate=True`` runs them in
    worker processes as the command line does, so a plugin that crashes is one failed cell
    (needed for ``--workers N`` or ``--executor`` in ``extra_args``)."""
    from harness.run.cli import main  # the runner wing, imported only when a grid runs

    argv = ["run", "--out", str(out), "--device", device, "--progress", progress]
    argv += [] if resume else ["--no-resume"]
    argv += ["--log-restorations"] if log_restorations else []
    argv += [] if isolate else ["--in-process"]
    flags = {"--preset": preset, "--dataset": _names(datasets), "--ciphers": _names(ciphers),
             "--classifiers": _names(classifiers), "--attacks": _names(attacks), "--kinds": _names(kinds),
             "--seed": None if seed is None else str(seed)}
    argv += [part for flag, value in flags.items() if value is not None for part in (flag, value)]
    output: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        if isinstance(config, dict):
            path = Path(scratch) / "config.yaml"
            path.write_text(yaml.safe_dump(config))
            config = path
        if config is not None:
            argv += ["--config", str(config)]
        errors = _Tee(sys.stderr)
        with contextlib.redirect_stderr(errors):  # still shown; kept for the exception's message
            code = main([*argv, *extra_args], stdout=output.append)
    if code not in (0, 1):
        raise BenchmarkError(f"scramblebench {' '.join(argv)} exited with {code}: " + "\n".join([*output, errors.text.strip()]))
    return Run(Path(out), code, output)


def security_cell(out: str | Path, dataset: str, cipher: str, attack: str, **kwargs: Any) -> Run:
    """One security cell (and its cipher's key-space cell): ``attack`` against ``cipher`` on ``dataset``."""
    return benchmark(out, datasets=[dataset], ciphers=[cipher], attacks=[attack], kinds=["key_space", "security"], **kwargs)


def accuracy_cell(out: str | Path, dataset: str, cipher: str, classifier: str, **kwargs: Any) -> Run:
    """One accuracy cell (and its cipher's key-space cell): ``classifier`` trained and tested on ``cipher``'s images."""
    return benchmark(out, datasets=[dataset], ciphers=[cipher], classifiers=[classifier], kinds=["key_space", "accuracy"], **kwargs)
