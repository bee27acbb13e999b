"""The runner wing, the top floor: the configuration, the plan of cells, their identity, the
three cell kinds, executors, the runner, provenance and the command line.  Nothing below it
(``harness`` ground floor, the plugins in ``ciphers``/``attacks``/``harness.classifiers``,
``reports``) imports it; ``tests/test_layering.py`` says so and keeps its own floors acyclic.

The public surface is re-exported here; the modules are ``config`` < ``plan`` < ``identity`` <
``cells`` < ``executors``/``provenance`` < ``runner``/``progress_display`` < ``cli``.
"""

from harness.run.cells import CellContext, CellOutcome, CellOutput, compute_cell, compute_guarded
from harness.run.config import ConfigError, resolve_config
from harness.run.executors import Executor, make_executor
from harness.run.identity import cell_hash, cell_inputs, code_version
from harness.run.plan import Cell, Selection, plan_cells
from harness.run.runner import Runner

__all__ = ["Cell", "CellContext", "CellOutcome", "CellOutput", "ConfigError", "Executor", "Runner", "Selection", "cell_hash", "cell_inputs",
           "code_version", "compute_cell", "compute_guarded", "make_executor", "plan_cells", "resolve_config"]
