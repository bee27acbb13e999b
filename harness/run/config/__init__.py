"""The configuration of a run, in one-way modules: :mod:`values` (typed coercion, merge) <
:mod:`schema` (the keys and their rules) and :mod:`presets` (data) < :mod:`fit` (counts fitted
to the data) < :mod:`resolve` (preset < file < flags, then checked and fitted).  The public names are re-exported here, lazily (PEP 562): the
command line's grammar needs the preset names, and ``scramblebench list`` must not import the
schema's torch."""

from __future__ import annotations

from harness.exports import lazy_exports

#: public name -> the module defining it
_EXPORTS = {
    **dict.fromkeys(["PAPER", "PAPER_CHANGES", "PRESETS", "QUICK", "PAPER_PAIRINGS"], "harness.run.config.presets"),
    **dict.fromkeys(["Fitted"], "harness.run.config.fit"),
    **dict.fromkeys(["load_config_file", "resolve_config", "resolve_run"], "harness.run.config.resolve"),
    **dict.fromkeys(["KEYS", "validate_config"], "harness.run.config.schema"),
    **dict.fromkeys(["MAX_SEED", "ConfigError", "merge"], "harness.run.config.values"),
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
