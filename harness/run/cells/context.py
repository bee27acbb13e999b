"""The one thing a cell needs besides its coordinates: :class:`CellContext`, the resolved
configuration with the run folder, device and cache policy, and the datasets and victim ciphers
the cells of a process share.  It pickles without its caches and progress hook, so a worker
process, a Ray task or a torchrun follower gets a copy of it and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ciphers.base import Cipher
from harness.data import ImageDataset, load_dataset
from harness.keys import derive_seed
from harness.progress import ProgressCallback
from harness.registry import create_cipher
from harness.run.plan import Cell, cipher_options, image_size, row_base


@dataclass
class CellContext:
    """Configuration, run folder, device and cache policy of the cells of one run."""

    config: dict[str, Any]
    run_dir: Path
    device: str = "cpu"
    refresh_cache: bool = False
    #: security cells hand back every restored image for the run folder's restoration log
    log_restorations: bool = False
    #: the progress callback of a cell (the runner's display); never pickled
    progress: Callable[[Cell], ProgressCallback | None] | None = field(default=None, compare=False)
    _data: dict[tuple, ImageDataset] = field(default_factory=dict, repr=False, compare=False)
    _ciphers: dict[tuple, Cipher] = field(default_factory=dict, repr=False, compare=False)
    #: the contract check of each (plugin kind, name, image size) this process ran: None or the violation
    contract_checks: dict[tuple, Exception | None] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None, "_data": {}, "_ciphers": {}, "contract_checks": {}}

    @property
    def cache_dir(self) -> Path:
        """Trained models and fitted attacks, shared by every run of this folder."""
        return self.run_dir / "cache"

    def cell_progress(self, cell: Cell) -> ProgressCallback | None:
        return self.progress(cell) if self.progress is not None else None

    def row_base(self, cell: Cell) -> dict[str, Any]:
        return row_base(self.config, cell)

    def image_size(self, cipher: str) -> tuple[int, int]:
        return image_size(self.config, cipher)

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
        """The user's cipher: a key drawn from the master seed for this cipher name only, built on the
        one construction path (:func:`harness.registry.create_cipher`)."""
        return self._keyed_cipher(name, image_size, "victim-key")

    def illustration_cipher(self, name: str, image_size: tuple[int, int] | None = None) -> Cipher:
        """The same cipher under a key used for nothing but the report's example figure: a plain image
        beside its ciphertext under the victim's key is a known-plaintext pair, and a few of those
        determine most of these ciphers' keys (``kpa``)."""
        return self._keyed_cipher(name, image_size, "illustration-key")

    def _keyed_cipher(self, name: str, image_size: tuple[int, int] | None, purpose: str) -> Cipher:
        image_size = image_size or self.image_size(name)
        key = (purpose, name, image_size)
        if key not in self._ciphers:
            options = cipher_options(self.config, name)
            block_size = options.pop("block_size", None)
            seed = derive_seed(self.config["seed"], purpose, name)
            self._ciphers[key] = create_cipher(name, image_size, block_size, seed, **options)
        return self._ciphers[key]
