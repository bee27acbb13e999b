"""Plugin contracts checked at run time: before a cell computes anything, its cipher is checked on
a few random images at the size the cell runs it at (:func:`ciphers.contract.check_cipher`: dtype,
shape, round trip, key space, declared traits) and a security cell's attack on its declarations
(:func:`attacks.contract.check_declarations`); the attack's restorations are checked where the cell
receives them (:meth:`attacks.base.Attack.restore`).

The check runs in the process that runs the cell, once per plugin and size (cached in the
:class:`CellContext`), so a plugin that kills its process while checked is one failed cell, as any
crash in a worker is; ``validate`` and ``plan`` run the same checks in their own process.
"""

from __future__ import annotations

from typing import Callable, Iterable

from attacks.contract import check_declarations
from ciphers.contract import ContractViolation, check_cipher, probe_images
from harness.registry import attacks
from harness.run.cells.context import CellContext
from harness.run.cells.output import one_line
from harness.run.plan import Cell, cell_image_size
from harness.transport import unwrapped


def cipher_violation(ctx: CellContext, name: str, size: tuple[int, int]) -> ContractViolation | None:
    """How the victim cipher ``name`` at ``size`` breaks its contract, or None.  A cipher that
    cannot be built raises as it would in the cell (often a configuration error, not the plugin's);
    one whose encrypt or decrypt raises on valid images breaks its contract.  The plugin is checked,
    not the harness's lossy channel in front of it (``transport``)."""
    cipher = unwrapped(ctx.victim_cipher(name, size))
    return _once(ctx, ("cipher", name, size), lambda: check_cipher(cipher, probe_images(cipher, size)))


def attack_violation(ctx: CellContext, name: str) -> ContractViolation | None:
    """How the attack ``name``'s declarations break its contract, or None."""
    return _once(ctx, ("attack", name), lambda: check_declarations(attacks.get(name)))


def _once(ctx: CellContext, key: tuple, check: Callable[[], None]) -> ContractViolation | None:
    """The violation ``check`` raises (any other exception counts as one), computed once per process."""
    if key not in ctx.contract_checks:
        try:
            check()
            ctx.contract_checks[key] = None
        except ContractViolation as violation:
            ctx.contract_checks[key] = violation
        except Exception as exc:
            ctx.contract_checks[key] = ContractViolation(key[0], key[1], f"its check on valid inputs raised {one_line(exc)}")
    return ctx.contract_checks[key]


def cell_violations(cell: Cell, ctx: CellContext) -> list[ContractViolation]:
    """The contract violations of the plugins ``cell`` runs: its cipher, and a security cell's attack."""
    found = [cipher_violation(ctx, cell.cipher, cell_image_size(ctx.config, cell))]
    if cell.kind == "security":
        found.append(attack_violation(ctx, cell.attack))
    return [v for v in found if v is not None]


def check_cell(cell: Cell, ctx: CellContext) -> None:
    """Raise the first contract violation of the plugins ``cell`` runs (the cell then fails at once)."""
    for violation in cell_violations(cell, ctx):
        raise ContractViolation(violation.kind, violation.name, violation.broken)


def plugin_violations(cells: Iterable[Cell], ctx: CellContext) -> list[str]:
    """One line per plugin of ``cells`` that breaks its contract (``validate`` and ``plan``)."""
    lines: dict[tuple[str, str], str] = {}
    for cell in cells:
        for violation in cell_violations(cell, ctx):
            lines.setdefault((violation.kind, violation.name), str(violation))
    return list(lines.values())
