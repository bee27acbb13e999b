"""The runner wing, the top floor: the configuration, the plan of cells, their identity, the
three cell kinds, executors, the runner, provenance and the command line.  Nothing below it
(``harness`` ground floor, the plugins in ``ciphers``/``attacks``/``harness.classifiers``,
``reports``) imports it; ``tests/test_layering.py`` says so and keeps its own floors acyclic.

The public surface is re-exported here, lazily (PEP 562): ``scramblebench list`` imports this
package and must not pay for torch and timm.  The modules are ``config`` < ``plan`` <
``identity`` < ``cells`` < ``executors``/``provenance`` < ``runner``/``progress_display`` < ``cli``.
"""

from __future__ import annotations

from harness.exports import lazy_exports

#: public name -> the module defining it
_EXPORTS = {
    **dict.fromkeys(["CellContext", "CellOutcome", "CellOutput", "compute_cell", "compute_guarded"], "harness.run.cells"),
    **dict.fromkeys(["ConfigError", "resolve_config"], "harness.run.config"),
    **dict.fromkeys(["Executor", "make_executor"], "harness.run.executors"),
    **dict.fromkeys(["cell_hash", "cell_inputs", "code_version"], "harness.run.identity"),
    **dict.fromkeys(["Cell", "Selection", "plan_cells"], "harness.run.plan"),
    "Runner": "harness.run.runner",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
