"""The configuration of a run, in one-way modules: :mod:`values` (typed coercion, merge) <
:mod:`schema` (the keys and their rules) and :mod:`presets` (data) < :mod:`fit` (counts fitted to the
data) < :mod:`resolve` (preset < file < flags, then checked and fitted).  The public names are re-exported here."""

from harness.run.config.presets import PAPER, PAPER_CHANGES, PRESETS, QUICK, PAPER_PAIRINGS
from harness.run.config.fit import Fitted
from harness.run.config.resolve import load_config_file, resolve_config, resolve_run
from harness.run.config.schema import KEYS, validate_config
from harness.run.config.values import MAX_SEED, ConfigError, merge

__all__ = ["KEYS", "MAX_SEED", "PAPER", "PAPER_CHANGES", "PRESETS", "QUICK", "PAPER_PAIRINGS", "ConfigError", "Fitted",
           "load_config_file", "merge", "resolve_config", "resolve_run", "validate_config"]
