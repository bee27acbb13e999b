"""The plan of a run: what a cell is, which cells a configuration and a selection make, the
settings a cell reads that more than one module needs (image sizes, the trained network, the
cell it depends on), and the split of a grid into shards.  Pure: it computes nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from typing import Any, Iterable

from harness.classifiers.base import keyed_classifier
from harness.data import LABELLED_DATASETS
from harness.registry import BUILTIN, Registry, attacks, ciphers, classifiers
from harness.results import cell_id
from harness.run.config.schema import cipher_options


@dataclass(frozen=True)
class Cell:
    """One unit of work: (dataset, cipher, classifier) for accuracy, (dataset, cipher, attack) for
    security and (dataset, cipher) for the key space and example images."""

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


def key_condition(config: dict[str, Any], name: str) -> str:
    default = "diff_key" if ciphers.get(name).per_image_key else "same_key"
    return str(cipher_options(config, name).get("key_condition", default))


def trained_classifier(name: str) -> str:
    """The network a classifier trains: a derived one (``vit_keyed``) reuses its plain base's."""
    return getattr(classifiers.get(name), "plain_base", None) or name


def image_size(config: dict[str, Any], cipher: str) -> tuple[int, int]:
    """The size a cipher runs at: its own (``cipher_image_size``), else the configuration's."""
    size = config["cipher_image_size"].get(cipher, config["image_size"])
    return int(size[0]), int(size[1])


def accuracy_image_size(config: dict[str, Any], cipher: str, classifier: str) -> tuple[int, int]:
    """A classifier's own size (the seed's ViT at 224) wins over the cipher's."""
    size = config["classifier_image_size"].get(classifier)
    return (int(size[0]), int(size[1])) if size else image_size(config, cipher)


def cell_image_size(config: dict[str, Any], cell: Cell) -> tuple[int, int]:
    """The size ``cell`` runs its cipher at: an accuracy cell's trained network's, else the cipher's."""
    if cell.kind == "accuracy":
        return accuracy_image_size(config, cell.cipher, trained_classifier(cell.classifier))
    return image_size(config, cell.cipher)


def dependencies(cell: Cell) -> tuple[Cell, ...]:
    """The accuracy cells whose trained models this one reuses: ``vit_keyed`` -> the plain ``vit``;
    a model-holder attack -> the plain ``vit`` its keyed model and reference come from, and the
    ``vit`` trained on the cipher when it reads that (``weights_finetuned``)."""
    if cell.kind == "accuracy":
        base = getattr(classifiers.get(cell.classifier), "plain_base", None)
        return (Cell("accuracy", cell.dataset, "plain", classifier=base),) if base else ()
    reads = getattr(attacks.get(cell.attack), "reads_models", ()) if cell.kind == "security" else ()
    if cell.dataset not in LABELLED_DATASETS:  # no labels, no provider model (the cell says n/a)
        return ()
    keyed = keyed_classifier(cell.cipher) if reads else None
    if keyed is None:
        return ()
    base = classifiers.get(keyed).plain_base
    needed = [Cell("accuracy", cell.dataset, "plain", classifier=base)]
    if "trained" in reads:
        needed.append(Cell("accuracy", cell.dataset, cell.cipher, classifier=base, key_condition=cell.key_condition))
    return tuple(needed)


def dependency(cell: Cell) -> Cell | None:
    """The first of :func:`dependencies` (the cell a shard keeps this one with), if any."""
    return next(iter(dependencies(cell)), None)


def row_base(config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """The columns every row of ``cell`` starts with: its coordinates, the preset and the seed."""
    return {
        "kind": cell.kind,
        "dataset": cell.dataset,
        "cipher": cell.cipher,
        "classifier": cell.classifier,
        "attack": cell.attack,
        "key_condition": cell.key_condition,
        "preset": config["preset"],
        "seed": config["seed"],
    }


def default_ciphers(config: dict[str, Any]) -> list[str]:
    """The ciphers a grid runs when none are named: those the configuration's ``ciphers`` section
    lists, and every third-party plugin.  A built-in cipher the section leaves out (the newer
    ``ak_*``, ``vit_kiya``, ``cfe_*``, which the quick preset's 5 minutes cannot hold) runs when
    named with ``--ciphers`` or given a section of its own."""
    listed = {ciphers.entry(name).name for name in config["ciphers"] if name in ciphers}
    return [n for n in ciphers.names() if n in listed or ciphers.entry(n).origin != BUILTIN]


def plan_cells(config: dict[str, Any], selection: Selection) -> list[Cell]:
    """Every cell of the grid, in the order they run (cheap kinds first)."""
    cipher_names = default_ciphers(config) if selection.ciphers is None else select(ciphers, selection.ciphers)
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


def shard_of(cell: Cell, count: int) -> int:
    """The 1-based shard of ``cell`` among ``count``: a stable digest of its coordinates (those of
    the cell it depends on, if any, so ``vit_keyed`` goes with its plain ``vit``)."""
    root = dependency(cell) or cell
    digest = hashlib.sha256("\0".join(root.id).encode()).hexdigest()
    return int(digest, 16) % count + 1


def shard_cells(cells: Iterable[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` of ``count`` (1-based), in plan order."""
    return [cell for cell in cells if shard_of(cell, count) == index]
