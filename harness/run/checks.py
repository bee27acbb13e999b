"""What ``validate``, ``plan`` and ``run`` check about the planned cells before any runs, beyond the
schema: every planned cipher builds at every size its cells use it at (a cipher named with
``--ciphers`` has no section for the schema to build), and every planned accuracy cell's network
accepts its options for that cipher and size (the ViT's patch must be the cipher's block).  A
failure is one :class:`ConfigError` line naming the key to change and what was expected; cheap:
ciphers are built with an arbitrary key, networks are not built.
"""

from __future__ import annotations

from typing import Any

from harness.data import LABELLED_DATASETS
from harness.registry import ciphers, classifiers
from harness.run.config import ConfigError
from harness.run.config.schema import cipher_section
from harness.run.plan import Cell, accuracy_image_size, cipher_options, image_size, trained_classifier


def check_cells(config: dict[str, Any], cells: list[Cell]) -> None:
    """Raise :class:`ConfigError` (one line) for the first planned cell that would fail for a configuration reason."""
    sizes: dict[str, list[tuple[int, int]]] = {}
    for cell in cells:
        size = accuracy_image_size(config, cell.cipher, trained_classifier(cell.classifier)) if cell.kind == "accuracy" else image_size(config, cell.cipher)
        if size not in sizes.setdefault(cell.cipher, []):
            sizes[cell.cipher].append(size)
    for name, used in sizes.items():
        cipher_section(name, cipher_options(config, name), _cipher_key(config, name), used)
    for cell in cells:
        if cell.kind == "accuracy" and cell.dataset in LABELLED_DATASETS:
            _check_network(config, cell)


def _cipher_key(config: dict[str, Any], name: str) -> str:
    """The key that sets a cipher's block: its section's, or the top-level ``block_size`` it inherits."""
    own = (config["ciphers"].get(name) or {}).get("block_size")
    if own is None and cipher_options(config, name).get("block_size") is not None:
        return f"block_size (used by cipher {name})"
    return f"ciphers.{name}"


def _check_network(config: dict[str, Any], cell: Cell) -> None:
    trained = trained_classifier(cell.classifier)
    size = accuracy_image_size(config, cell.cipher, trained)
    options = cipher_options(config, cell.cipher)
    block = options.pop("block_size", None)
    options.pop("transport", None)  # the channel does not change what the network is built for
    cipher = ciphers.get(cell.cipher).from_seed(0, size, block, **options)
    model_options = dict((config["classifiers"].get(trained) or {}).get("model_options") or {})
    cls = classifiers.get(cell.classifier)
    try:
        resolved = cls.for_cipher(cipher, model_options)
        # a derived network (vit_keyed) is trained on plain images: block 1, its patch set by for_cipher
        classifiers.get(trained).resolve_options(image_size=size, block_size=1 if trained != cell.classifier else cipher.block_size, **resolved)
    except ValueError as exc:
        key = f"classifiers.{trained}.model_options" + (".patch_size" if "patch_size" in str(exc) else "")
        raise ConfigError(f"{key}: {' '.join(str(exc).split())} (accuracy cell {cell.dataset} / {cell.cipher} / {cell.classifier})") from None
