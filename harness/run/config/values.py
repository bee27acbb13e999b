"""Typed values of a configuration: coercion of scalars, lists, mappings and image sizes, each
failing with a one-line :class:`ConfigError` that names the key path; and the recursive merge
that layers a file and flags over a preset.  It knows no key of the schema."""

from __future__ import annotations

import copy
import difflib
import math
import typing
from typing import Any, Mapping

#: the largest master seed (seeds are 63-bit, as :func:`harness.keys.derive_seed` makes them)
MAX_SEED = 2**63 - 1

class ConfigError(ValueError):
    """A configuration error; its message is one line naming the key path and what is allowed."""


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def allowed_list(choices: typing.Iterable[str]) -> str:
    return ", ".join(sorted(choices)) or "none"


# -- scalars ------------------------------------------------------------------------------------
def _number_text(value: str) -> str:
    return value.strip().replace("_", "")


def to_int(value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (numeric strings and integral floats coerced), range-checked."""
    bounds = ""
    if minimum is not None and maximum is not None:
        bounds = f" in [{minimum}, {maximum}]"
    elif minimum is not None:
        bounds = f" >= {minimum}"
    problem = f"{path}: must be an integer{bounds}, got {value!r}"
    result: int | None = None
    if isinstance(value, bool):
        raise ConfigError(problem)
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        text = _number_text(value)
        try:
            result = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(problem) from None
            if not number.is_integer():
                raise ConfigError(problem)
            result = int(number)
    if result is None or (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise ConfigError(problem)
    return result


def to_float(value: Any, path: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a finite float (numeric strings such as ``"1e-3"`` coerced), range-checked."""
    bounds = f" in [{minimum}, {maximum}]" if minimum is not None and maximum is not None else ""
    problem = f"{path}: must be a number{bounds}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(problem)
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(_number_text(value))
        except ValueError:
            raise ConfigError(problem) from None
    else:
        raise ConfigError(problem)
    if not math.isfinite(result) or (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise ConfigError(problem)
    return result


_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{path}: must be true or false, got {value!r}")


def to_list(value: Any, path: str) -> list[Any]:
    """A list field: a string is a one-element list (or a comma-separated one), never its letters."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{path}: must be a list (or one name), got {value!r}")
    return items


def to_mapping(value: Any, path: str, allow_none: bool = True) -> dict[str, Any]:
    if value is None and allow_none:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a mapping of keys to values, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: keys must be names, got {key!r}")
    return dict(value)


def image_size(value: Any, path: str) -> list[int]:
    """``[H, W]``: a pair of positive integers (``32`` alone is an error, not 32 x 32)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{path}: must be a pair [H, W] of positive integers, got {value!r}")
    return [to_int(v, f"{path}[{i}]", minimum=1) for i, v in enumerate(value)]



def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, ``None`` values in ``override`` are kept."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
