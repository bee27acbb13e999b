"""Resolution of a configuration: preset (< the photograph setting, for ``images`` only) < YAML
file < command-line flags, then the schema, then the fit to the data (:mod:`fit`).

The one module that sees both the presets (data) and the schema (rules), so neither imports the
other.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from harness.registry import ciphers
from harness.run.config.fit import Fitted, fit_to_data
from harness.run.config.presets import PHOTOGRAPH_CHANGES, PRESETS, QUICK_PHOTOGRAPH_BUDGETS
from harness.run.config.schema import KEYS, block_wise, canonical_sections, validate_config
from harness.run.config.values import ConfigError, merge, to_list


def load_config_file(config_file: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, plugin-named sections keyed by registered names."""
    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).replace("\n", " ")
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    unknown = sorted(str(k) for k in set(loaded) - set(KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(KEYS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config file {path} has unknown key(s) {unknown}.{hint} Allowed keys: {', '.join(sorted(KEYS))}")
    return canonical_sections(loaded, where=f" in {path}")


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    origin: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The configuration of :func:`resolve_run` (its adaptations to the data are not returned)."""
    return resolve_run(preset, config_file, overrides, origin=origin).config


def resolve_run(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    origin: dict[str, str] | None = None,
) -> Fitted:
    """Preset, then the YAML file, then flag overrides (flags left unset are ``None`` and dropped),
    checked against the schema (:func:`harness.run.config.schema.validate_config`) and fitted to
    the data (:func:`harness.run.config.fit.fit_to_data`: the file's and the flags' keys are the
    user's, refused when they do not fit; the rest are defaults, adapted).

    ``preset`` is the one given explicitly (``--preset``); ``None`` takes the file's ``preset:``
    key, else ``quick``.  A file's ``preset: paper`` selects the paper preset as the base and its
    other keys apply on top; an explicit ``preset`` that disagrees with the file's is an error.
    When every dataset is ``images`` (``--images DIR``), :data:`PHOTOGRAPH_CHANGES` (224 x 224,
    the seed's blocks) apply on top of the preset, and on ``quick`` its GAN budget for that size.  ``--image-size`` also drops the per-cipher and
    per-classifier sizes, ``--block-size`` the block-wise ciphers' own block sizes: one size, one
    block for everything.  ``origin`` names where each override came from (``{"seed": "--seed"}``)
    for error messages.
    """
    loaded = load_config_file(config_file) if config_file is not None else {}
    file_preset = loaded.get("preset")
    for name, where in ((preset, "--preset"), (file_preset, f"preset in {config_file}")):
        if name is not None and name not in PRESETS:
            raise ConfigError(f"preset: unknown preset {name!r} ({where}); allowed: {', '.join(sorted(PRESETS))}")
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ConfigError(
            f"preset: --preset {preset} conflicts with 'preset: {file_preset}' in {config_file}; "
            "give the preset in one place or make them agree"
        )
    chosen = preset or file_preset or "quick"
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    base = PRESETS[chosen]
    if _photographs_only(given.get("datasets", loaded.get("datasets", base["datasets"]))):
        base = merge(base, PHOTOGRAPH_CHANGES)
        if chosen == "quick":
            base = merge(base, QUICK_PHOTOGRAPH_BUDGETS)
    config = merge(base, loaded)
    for key, value in given.items():
        _apply_flag(config, key, value)
    sources = {key: (origin or {}).get(key, "a command-line flag") for key in given}
    return fit_to_data(validate_config(config, sources), explicit={*loaded, *given})


def _photographs_only(datasets: Any) -> bool:
    try:
        return set(to_list(datasets, "datasets")) == {"images"}
    except ConfigError:  # the schema names the problem
        return False


def _apply_flag(config: dict[str, Any], key: str, value: Any) -> None:
    """A flag's value, and for ``--image-size`` / ``--block-size`` the removal of the finer-grained
    values it replaces (a flag means one size, or one block, for everything)."""
    config[key] = value
    if key == "image_size":
        config["cipher_image_size"], config["classifier_image_size"] = {}, {}
    elif key == "block_size" and isinstance(config.get("ciphers"), dict):
        for name, section in config["ciphers"].items():
            if isinstance(section, dict) and name in ciphers and block_wise(name):
                section.pop("block_size", None)
