"""The typed schema of a benchmark configuration, checked before any cell runs.

A configuration is resolved as preset < YAML file < flags (:func:`harness.run.config.resolve.resolve_config`)
and then passed through :func:`validate_config`, which returns a normalised copy or raises a
:class:`ConfigError` naming the key path and what is allowed.  The rules:

- numbers are numbers: numeric strings (YAML 1.1 reads ``lr: 1e-3`` as the string ``"1e-3"``)
  are coerced for numeric fields, anything else there is an error;
- every nested key is known: classifier sections are :class:`harness.training.TrainConfig`
  fields (``model_options`` the classifier's declared ``options``), attack sections are
  :class:`attacks.base.AttackConfig` fields (``params`` the attack's constructor keywords),
  cipher sections are ``block_size``, ``transport`` and the options the cipher's ``from_seed``
  accepts (a cipher is built once at every image size it will run at, so a bad block size fails
  here);
- ``transport`` (top level or per cipher) is null or ``{jpeg: Q}`` (:mod:`harness.transport`);
- plugin names are registered names: aliases are resolved to the registered name, unknown
  names are errors with a did-you-mean hint;
- a list field given as a string is a one-element (or comma-separated) list;
- image sizes are pairs of positive integers;
- ``block_size`` (null or an integer >= 1) is the block of every block-wise cipher (class
  ``default_block_size`` > 1) whose section sets none (:func:`cipher_options`).
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping

from attacks.base import AttackConfig
from harness.compilation import compile_setting
from harness.data import DATASETS
from harness.registry import Registry, attacks, ciphers, classifiers
from harness.run.config.values import (
    MAX_SEED,
    ConfigError,
    allowed_list,
    did_you_mean,
    image_size,
    to_bool,
    to_float,
    to_int,
    to_list,
    to_mapping,
)
from harness.training import TrainConfig
from harness.transport import TransportError, cipher_transport, parse_transport

#: every top-level key of a configuration (each preset sets them all; tests/test_config_schema.py checks)
KEYS = (
    "preset", "datasets", "data_dir", "image_size", "block_size", "n_train", "n_test", "n_attacker", "seed", "ciphers",
    "cipher_image_size", "classifier_image_size", "pairings", "default_classifiers", "classifiers", "attacks",
    "known_pairs", "examples", "ciphertext_ladder", "accuracy_seeds", "verdict_margin", "transport",
)
#: the preset names a configuration may carry (the presets themselves are :mod:`harness.run.config.presets`)
PRESET_NAMES = ("paper", "quick")

#: top-level sections keyed by plugin name, and the registry kind of their keys
PLUGIN_SECTIONS = {
    "ciphers": "cipher",
    "cipher_image_size": "cipher",
    "pairings": "cipher",
    "classifiers": "classifier",
    "classifier_image_size": "classifier",
    "attacks": "attack",
}


def _registry(kind: str) -> Registry:
    return {"cipher": ciphers, "classifier": classifiers, "attack": attacks}[kind]


def block_wise(cipher: str) -> bool:
    """Whether a cipher works on blocks (its default block is larger than a pixel), so the
    top-level ``block_size`` and ``--block-size`` apply to it (not to ``plain`` or ``pe``)."""
    return int(ciphers.get(cipher).default_block_size) > 1


def cipher_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A cipher's options as its cells build it: its ``ciphers`` section, with the top-level
    ``block_size`` for a block-wise cipher whose section sets none, and the run's ``transport``
    unless the section sets its own."""
    options = dict(config["ciphers"].get(name) or {})
    default = config.get("block_size")  # absent in run.json of older versions
    if options.get("block_size") is None and default is not None and block_wise(name):
        options["block_size"] = default
    transport = cipher_transport(config, name)
    return {**options, "transport": transport} if transport is not None else options


def plugin_name(kind: str, name: Any, path: str) -> str:
    """The registered name of ``name`` (aliases resolved); unknown names get a did-you-mean."""
    registry = _registry(kind)
    if not isinstance(name, str):
        raise ConfigError(f"{path}: must be a {kind} name, got {name!r}")
    try:
        return registry.entry(name).name
    except KeyError as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise ConfigError(f"{path}: {message}") from None


def name_list(kind: str, value: Any, path: str) -> list[str]:
    names: list[str] = []
    for i, name in enumerate(to_list(value, path)):
        canonical = plugin_name(kind, name, f"{path}[{i}]")
        if canonical not in names:
            names.append(canonical)
    return names


def canonical_sections(partial: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``partial`` (e.g. a YAML file, before it is merged into a preset) with the plugin names
    keying its sections resolved to registered names, so ``vit_blockwise:`` merges into
    ``proposed:`` instead of being a second, ignored entry."""
    result = dict(partial)
    for section, kind in PLUGIN_SECTIONS.items():
        value = result.get(section)
        if not isinstance(value, Mapping):
            continue
        resolved: dict[str, Any] = {}
        for name, options in value.items():
            canonical = plugin_name(kind, name, f"{section}.{name}")
            if canonical in resolved:
                raise ConfigError(f"{section}: {name!r} and {canonical!r} name the same {kind}{where}; keep one")
            resolved[canonical] = options
        result[section] = resolved
    return result


# -- typed dataclass sections -----------------------------------------------------------------------
def _coerce(value: Any, hint: Any, path: str) -> Any:
    """``value`` converted to the type ``hint`` of a dataclass field (int, float, bool, str,
    ``X | None``, ``tuple[...]``, ``Mapping``); an unconvertible value is a ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _coerce(value, options[0], path) if len(options) == 1 else value
    if hint is bool:
        return to_bool(value, path)
    if hint is int:
        maximum = MAX_SEED if path.endswith(".seed") else None
        return to_int(value, path, maximum=maximum)
    if hint is float:
        return to_float(value, path)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string, got {value!r}")
        return value
    if origin is tuple:
        fixed = [a for a in args if a is not Ellipsis]
        if not isinstance(value, (list, tuple)) or (Ellipsis not in args and len(value) != len(fixed)):
            raise ConfigError(f"{path}: must be a list of {len(fixed)} values, got {value!r}")
        item = fixed[0] if Ellipsis in args else None
        return [_coerce(v, item or fixed[i], f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        return to_mapping(value, path)
    return value


def dataclass_section(cls: type, section: Any, path: str, exclude: Mapping[str, str] = {}) -> dict[str, Any]:
    """A section whose keys are ``cls``'s dataclass fields, with values coerced to their types.

    ``exclude`` maps field names that may not be set here to the reason.
    """
    section = to_mapping(section, path)
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    allowed = [f for f in fields if f not in exclude]
    result: dict[str, Any] = {}
    for key, value in section.items():
        if key in exclude:
            raise ConfigError(f"{path}.{key}: {exclude[key]}")
        if key not in fields:
            raise ConfigError(f"{path}.{key}: unknown key.{did_you_mean(key, allowed)} Allowed keys: {allowed_list(allowed)}")
        result[key] = _coerce(value, hints[key], f"{path}.{key}")
    return result


def _check_keys(given: Mapping[str, Any], allowed: typing.Iterable[str], path: str, what: str) -> None:
    allowed = sorted(allowed)
    for key in given:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown {what}.{did_you_mean(key, allowed)} Allowed: {allowed_list(allowed)}")


def _build(factory: Callable[..., Any], options: dict[str, Any], path: str) -> None:
    try:
        factory(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}".replace("\n", " ")) from None


def classifier_section(name: str, section: Any, path: str) -> dict[str, Any]:
    cls = _registry("classifier").get(name)
    base = getattr(cls, "plain_base", None)
    if base:
        raise ConfigError(
            f"{path}: {name} is derived from {base} without retraining and uses classifiers.{base}; "
            f"set its training settings there"
        )
    result = dataclass_section(TrainConfig, section, path)
    declared = getattr(cls, "options", None)
    if "model_options" in result and isinstance(declared, Mapping):
        _check_model_options(name, declared, result["model_options"], f"{path}.model_options")
    _build(TrainConfig, result, path)
    if "compile" in result:  # YAML's `compile: yes` and the CLI's strings become True / False / "auto"
        result["compile"] = compile_setting(result["compile"])
    return result


def _check_model_options(name: str, declared: Mapping[str, Any], given: Mapping[str, Any], path: str) -> None:
    """Keys of ``given`` against a classifier's declared options; a ``<x>_options`` mapping
    next to an option ``<x>`` naming a classifier (``backbone`` / ``backbone_options``) is
    checked against that classifier's options in turn."""
    _check_keys(given, declared, path, f"option of classifier {name}")
    registry = _registry("classifier")
    for key, value in given.items():
        sibling = key.removesuffix("_options")
        if key == sibling or not isinstance(value, Mapping):
            continue
        inner = given.get(sibling, declared.get(sibling))
        if isinstance(inner, str) and inner in registry:
            inner_declared = getattr(registry.get(inner), "options", None)
            if isinstance(inner_declared, Mapping):
                _check_model_options(inner, inner_declared, value, f"{path}.{key}")


def attack_section(name: str, section: Any, path: str) -> dict[str, Any]:
    cls = _registry("attack").get(name)
    result = dataclass_section(
        AttackConfig, section, path, exclude={"known_pairs": "set the top-level known_pairs (the runner overrides it per attack)"}
    )
    if "params" in result:
        parameters = inspect.signature(cls.__init__).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            accepted = [p.name for p in parameters if p.name not in ("self", "seed", "device") and p.kind is not inspect.Parameter.VAR_POSITIONAL]
            _check_keys(result["params"], accepted, f"{path}.params", f"parameter of attack {name}")
    _build(AttackConfig, result, path)
    return result


_REJECTED = re.compile(r"does not accept option\(s\) (?P<unknown>.*?) \(accepted: (?P<accepted>.*?)\)")


def cipher_section(name: str, section: Any, path: str, sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """``block_size`` plus the cipher's own ``from_seed`` options, checked by building the cipher
    (with an arbitrary key) at every image size it runs at."""
    result = to_mapping(section, path)
    if "block_size" in result and result["block_size"] is not None:
        result["block_size"] = to_int(result["block_size"], f"{path}.block_size", minimum=1)
    if "transport" in result:
        result["transport"] = _transport(result["transport"], f"{path}.transport")
    options = {k: v for k, v in result.items() if k not in ("block_size", "transport")}
    cls = _registry("cipher").get(name)
    for size in sizes:
        try:
            cls.from_seed(0, size, result.get("block_size"), **options)
        except Exception as exc:
            text = str(exc).replace("\n", " ")
            rejected = _REJECTED.search(text)
            if rejected or (isinstance(exc, TypeError) and "unexpected keyword" in text):
                accepted = ["block_size", "transport"]
                if rejected and rejected["accepted"] != "none":
                    accepted += [a.strip() for a in rejected["accepted"].split(",")]
                unknown = rejected["unknown"].split(",")[0].strip() if rejected else next(iter(options), "?")
                raise ConfigError(
                    f"{path}.{unknown}: unknown key for cipher {name}.{did_you_mean(unknown, accepted)} Allowed keys: {', '.join(accepted)}"
                ) from None
            raise ConfigError(f"{path}: {text} (at image size {size[0]} x {size[1]}; allowed keys: block_size, transport and the cipher's own options)") from None
    return result


def _transport(value: Any, path: str) -> dict[str, Any] | None:
    try:
        return parse_transport(value, path)
    except TransportError as exc:
        raise ConfigError(str(exc)) from None


# -- the whole configuration -----------------------------------------------------------------------
def _optional_count(value: Any, path: str) -> int | None:
    return None if value is None else to_int(value, path, minimum=1)


def validate_config(config: Mapping[str, Any], origin: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A checked, normalised copy of a resolved configuration (numbers coerced, names resolved).

    ``origin`` maps top-level keys to where they were set (e.g. ``{"seed": "--seed"}``) so an
    error can say so.  Raises :class:`ConfigError` with a one-line message.
    """
    try:
        return _validate(copy.deepcopy(dict(config)))
    except ConfigError as exc:
        message = str(exc)
        top = re.split(r"[.\[: ]", message, maxsplit=1)[0]
        if origin and top in origin:
            message = f"{message} (set by {origin[top]})"
        raise ConfigError(message) from None


def _validate(config: dict[str, Any]) -> dict[str, Any]:
    known = set(KEYS)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key.{did_you_mean(unknown[0], known)} Allowed keys: {allowed_list(known)}")
    missing = sorted(known - set(config))
    if missing:
        raise ConfigError(f"{missing[0]}: missing key")
    if config["preset"] not in PRESET_NAMES:
        raise ConfigError(f"preset: unknown preset {config['preset']!r}; allowed: {allowed_list(PRESET_NAMES)}")

    _check_datasets(config)
    config["image_size"] = image_size(config["image_size"], "image_size")
    config["block_size"] = _optional_count(config["block_size"], "block_size")
    for split in ("n_train", "n_test", "n_attacker"):
        config[split] = _optional_count(config[split], split)
        if config[split] is None and "natural" in config["datasets"]:
            raise ConfigError(f"{split}: the natural dataset draws crops, so it needs a number of images (>= 1), not null")
    config["seed"] = to_int(config["seed"], "seed", minimum=0, maximum=MAX_SEED)
    config["known_pairs"] = to_int(config["known_pairs"], "known_pairs", minimum=1)
    config["examples"] = to_int(config["examples"], "examples", minimum=1)
    config["verdict_margin"] = to_float(config["verdict_margin"], "verdict_margin", minimum=0.0, maximum=1.0)
    config["transport"] = _transport(config["transport"], "transport")
    config["accuracy_seeds"] = to_int(config["accuracy_seeds"], "accuracy_seeds", minimum=1)
    config["ciphertext_ladder"] = sorted(
        {to_int(v, f"ciphertext_ladder[{i}]", minimum=1) for i, v in enumerate(to_list(config["ciphertext_ladder"], "ciphertext_ladder"))}
    )

    for section in PLUGIN_SECTIONS:
        config[section] = canonical_sections({section: to_mapping(config[section], section)})[section]
    for name, size in config["cipher_image_size"].items():
        config["cipher_image_size"][name] = image_size(size, f"cipher_image_size.{name}")
    for name, size in config["classifier_image_size"].items():
        config["classifier_image_size"][name] = image_size(size, f"classifier_image_size.{name}")
    for name, paired in config["pairings"].items():
        config["pairings"][name] = name_list("classifier", paired, f"pairings.{name}")
    config["default_classifiers"] = name_list("classifier", config["default_classifiers"], "default_classifiers")
    for name, section in config["classifiers"].items():
        config["classifiers"][name] = classifier_section(name, section, f"classifiers.{name}")
    for name, section in config["attacks"].items():
        config["attacks"][name] = attack_section(name, section, f"attacks.{name}")
    for name, section in config["ciphers"].items():
        config["ciphers"][name] = cipher_section(name, section, f"ciphers.{name}", _cipher_sizes(config, name))
        inherited = cipher_options(config, name).get("block_size")
        if section.get("block_size") is None and inherited is not None:
            cipher_section(name, {**section, "block_size": inherited}, f"block_size (used by cipher {name})", _cipher_sizes(config, name))
    return config


def _check_datasets(config: dict[str, Any]) -> None:
    """``datasets`` are known names (duplicates dropped); ``data_dir`` is a folder when one is read from disk."""
    datasets = to_list(config["datasets"], "datasets")
    if not datasets:
        raise ConfigError(f"datasets: give at least one of {', '.join(DATASETS)}")
    for i, name in enumerate(datasets):
        if name not in DATASETS:
            raise ConfigError(f"datasets[{i}]: unknown dataset {name!r}.{did_you_mean(str(name), DATASETS)} Allowed: {', '.join(DATASETS)}")
    config["datasets"] = list(dict.fromkeys(datasets))
    if config["data_dir"] is not None:
        if not isinstance(config["data_dir"], (str, Path)):
            raise ConfigError(f"data_dir: must be a folder path, got {config['data_dir']!r}")
        config["data_dir"] = str(config["data_dir"])
    needs_dir = [d for d in config["datasets"] if d != "natural"]
    if needs_dir and config["data_dir"] is None:
        raise ConfigError(f"data_dir: dataset {needs_dir[0]} is read from a local folder; set data_dir (--data-dir)")
    if needs_dir and not Path(config["data_dir"]).is_dir():
        raise ConfigError(f"data_dir: {config['data_dir']} is not a folder (needed by dataset {needs_dir[0]})")


def _cipher_sizes(config: Mapping[str, Any], cipher: str) -> list[tuple[int, int]]:
    """Every image size ``cipher`` runs at: its own, and its paired classifiers' own sizes."""
    sizes = [tuple(config["cipher_image_size"].get(cipher, config["image_size"]))]
    for name in config["pairings"].get(cipher, config["default_classifiers"]):
        trained = getattr(classifiers.get(name), "plain_base", None) or name
        size = config["classifier_image_size"].get(trained)
        if size and tuple(size) not in sizes:
            sizes.append(tuple(size))
    return sizes  # type: ignore[return-value]
