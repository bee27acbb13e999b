"""Cell identity: a digest of a cell's coordinates, the configuration parts it reads
(:func:`cell_inputs`) and the code it runs (:func:`code_version`).  A cell with a verified record
of its identity in the run folder is finished (resume); any other is computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.registry import Registry, attacks, ciphers, classifiers
from harness.run.plan import Cell, cell_image_size, cipher_options, dependencies, trained_classifier

#: the repository root: where scramblebench's packages live (sources are hashed relative to it)
REPO_ROOT = Path(__file__).resolve().parents[2]

#: bump when the meaning of a cell's inputs or rows changes in a way the sources do not show
#: (2: the cells became module functions, so the hashed sources are their files)
IDENTITY_FORMAT = 2


def normalised(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists), for comparing stored inputs."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def cell_inputs(config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """Exactly the parts of the resolved configuration that ``cell`` reads.

    The preset name and master seed (they are in every row), the dataset with the size of every
    split the cell loads (and ``data_dir`` for a dataset read from disk), the cipher's options and
    the image size it runs at, and per kind: ``examples`` (key space); the trained network's
    ``classifiers`` section and ``accuracy_seeds`` (accuracy; ``vit_keyed`` reads ``vit``'s); the
    attack's section, ``known_pairs``, ``examples`` and, for a statistical attack, ``ciphertext_ladder``
    (security).  Keys the cell does not read (``pairings``, ``verdict_margin``, other ciphers' options...) are
    not part of it, so changing them recomputes nothing.
    """
    inputs: dict[str, Any] = {"preset": config["preset"], "seed": config["seed"], "dataset": cell.dataset}
    if cell.dataset != "natural":  # the embedded photographs do not read data_dir
        inputs["data_dir"] = None if config.get("data_dir") is None else str(config["data_dir"])
    cipher = {"name": cell.cipher, "options": cipher_options(config, cell.cipher), "image_size": list(cell_image_size(config, cell))}
    if cell.kind == "key_space":
        splits = ["test"]
        inputs["examples"] = config["examples"]
    elif cell.kind == "accuracy":
        trained = trained_classifier(cell.classifier)
        splits = ["train", "test"]
        inputs["classifier"] = {"name": cell.classifier, "trained": trained, "settings": config["classifiers"].get(trained) or {}}
        inputs["accuracy_seeds"] = config["accuracy_seeds"]
    elif cell.kind == "security":
        attack = attacks.get(cell.attack)
        splits = ["test", "attacker"] + (["train"] if getattr(attack, "uses_victim_ciphertexts", False) else [])
        inputs["attack"] = {"name": cell.attack, "settings": config["attacks"].get(cell.attack) or {}}
        inputs["known_pairs"] = config["known_pairs"]
        if getattr(attack, "statistical", False):  # only a statistical attack is refitted along the ladder
            inputs["ciphertext_ladder"] = [int(c) for c in config["ciphertext_ladder"]]
        inputs["examples"] = config["examples"]
        if getattr(attack, "reads_models", ()):  # a model-holder attack reads the models of these accuracy cells
            inputs["models"] = [cell_inputs(config, needed) for needed in dependencies(cell)]
    else:
        raise ValueError(f"unknown cell kind {cell.kind!r}")
    inputs["splits"] = {split: config[f"n_{split}"] for split in sorted(splits)}
    inputs["cipher"] = cipher
    return normalised(inputs)


#: core modules every cell runs, relative to the repository root
_CORE_SOURCES = ("harness/data.py", "harness/lazy.py", "harness/keys.py", "harness/metrics.py", "harness/stats.py", "ciphers/base.py",
                 "harness/transport.py",
                 "harness/run/plan.py", "harness/run/cells/context.py", "harness/run/cells/output.py")
_KIND_SOURCES = {
    "key_space": ("harness/run/cells/key_space.py", "harness/run/security_rows.py"),
    "accuracy": ("harness/run/cells/accuracy.py", "harness/run/cells/model_cache.py", "harness/training.py",
                 "harness/compilation.py", "harness/world.py",
                 "harness/feeding.py", "harness/cache.py", "harness/classifiers"),
    "security": ("harness/run/cells/security.py", "harness/run/cells/provider.py", "attacks/base.py", "harness/run/security.py", "harness/run/scoring.py", "harness/run/security_rows.py", "harness/symmetry.py", "harness/cache.py"),
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


def _source_files(cell: Cell) -> list[Path]:
    """The core modules, the cell kind's modules and the modules of the cell's plugins."""
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
        if getattr(attacks.get(cell.attack), "reads_models", ()):  # and the code that made the models it reads
            files += [path for needed in dependencies(cell) for path in _source_files(needed)]
    for plugin in filter(None, plugin_files):
        files += _helper_files(plugin)
    return files


def code_version(cell: Cell) -> dict[str, str]:
    """The code a cell runs: the scramblebench version and one digest of the sources it executes.

    The digest covers the core modules (data, lazy collections, keys, metrics, stats, the cipher
    base), the cell's own module and its context, the modules of the cell's cipher, classifier
    (the whole ``harness/classifiers`` package for accuracy cells, with training) or attack (with
    ``attacks/base.py``, ``harness/run/security.py`` and the package's ``_*.py`` helpers; a
    model-holder attack adds the code of the accuracy cells whose models it reads),
    third-party plugins' defining modules included.  Editing a report, the command line, the
    scheduler, the docs, the tests or another cipher's module changes no cell's identity.  Library
    versions and the git commit are recorded in the cell's record but are not part of the identity.
    """
    key = (cell.kind, cell.cipher, cell.classifier, cell.attack)
    if key not in _CODE_VERSIONS:
        digest = hashlib.sha256()
        for path in sorted(set(p.resolve() for p in _source_files(cell))):
            name = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name
            digest.update(f"{name}\0{_file_digest(path)}\n".encode())
        _CODE_VERSIONS[key] = {"scramblebench": scramblebench_version(), "sources": digest.hexdigest()[:16]}
    return dict(_CODE_VERSIONS[key])


_CODE_VERSIONS: dict[tuple[str, ...], dict[str, str]] = {}


def cell_hash(cell: Cell, inputs: dict[str, Any], code: dict[str, str]) -> str:
    """The cell's identity: a digest of its coordinates, the inputs it reads and its code version."""
    text = json.dumps({"format": IDENTITY_FORMAT, "cell": dataclasses.asdict(cell), "inputs": inputs, "code": code},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def identity(config: dict[str, Any], cell: Cell) -> str:
    """The hash of ``cell`` under ``config``: what the leader and every worker agree on."""
    return cell_hash(cell, cell_inputs(config, cell), code_version(cell))


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
