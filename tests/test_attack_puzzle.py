"""The puzzle attack: its grid solvers on exact inputs, and key recovery from ciphertexts alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attacks.base import AttackConfig, CipherFamily
from harness.run.scoring import positions_recovered
from attacks.puzzle import arrange, descend, dihedral, energy, grid_edges, greedy_raster, shifts, spectral_layout
from harness.data import load_dataset
from harness.registry import attacks


def _grid_distance(side: int) -> torch.Tensor:
    """Squared Euclidean distance between the cells of a side x side grid, in raster order."""
    rows, cols = np.divmod(np.arange(side * side), side)
    return torch.from_numpy((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2).double()


def test_dihedral_gives_the_eight_distinct_symmetries() -> None:
    maps = {tuple(m.tolist()) for m in dihedral(3, torch.device("cpu"))}
    assert len(maps) == 8 and tuple(range(9)) in maps


@pytest.mark.parametrize("side", [2, 4, 8])
def test_spectral_layout_recovers_a_shuffled_grid_up_to_symmetry(side: int) -> None:
    shuffle = torch.randperm(side * side, generator=torch.Generator().manual_seed(side))
    distance = _grid_distance(side)[shuffle][:, shuffle]  # item i is grid cell shuffle[i]
    layout = spectral_layout(distance, side)  # cell -> item
    placed = shuffle[layout]  # cell -> true cell
    assert any(torch.equal(placed, symmetry) for symmetry in dihedral(side, torch.device("cpu")))


def test_greedy_fill_shift_and_descent_solve_a_directional_jigsaw() -> None:
    rows, cols = 4, 5
    n = rows * cols
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    cell_of = torch.argsort(shuffle)  # piece -> its true cell
    r, c = cell_of // cols, cell_of % cols
    beside = ((r[:, None] != r[None]) | (c[None] != c[:, None] + 1)).double()  # 0 only for true right neighbours
    below = ((c[:, None] != c[None]) | (r[None] != r[:, None] + 1)).double()
    edges = grid_edges(rows, cols, beside, below)
    solved = arrange(rows, cols, edges, beside, below, [])
    assert torch.equal(solved, shuffle) and float(energy(solved[None], edges)) == 0
    assert greedy_raster(rows, cols, beside, below).shape == (n, n)
    assert shifts(solved, rows, cols).shape == (n, n)
    worse, _ = descend(solved.flip(0), edges)
    assert float(energy(worse[None], edges)) <= float(energy(solved.flip(0)[None], edges))


def _puzzle(family: CipherFamily, victim: torch.Tensor, seed: int = 5):
    cipher = family.draw(seed)
    attack = attacks.get("puzzle")()
    attack.fit(victim[:2], family, AttackConfig(), victim_ciphertexts=cipher.encrypt(victim))
    return attack, cipher


@pytest.mark.parametrize("block", [4, 8])
def test_recovers_a_proposed_key_from_a_few_hundred_ciphertexts(block: int) -> None:
    victim = load_dataset("natural", "test", (32, 32), n=200, seed=3).images
    attack, cipher = _puzzle(CipherFamily("proposed", (32, 32), block), victim)
    assert positions_recovered(attack, cipher, 3, (32, 32)) >= 0.9
    assert np.array_equal(attack.key["pixel_perm"], cipher.key()["pixel_perm"])


@pytest.mark.slow
def test_recovers_a_224_pixel_key_with_16_pixel_blocks_from_a_few_ciphertexts() -> None:
    victim = load_dataset("natural", "test", (224, 224), n=8, seed=3).images
    attack, cipher = _puzzle(CipherFamily("proposed", (224, 224), 16), victim)
    assert positions_recovered(attack, cipher, 3, (224, 224)) >= 0.9


def test_recovers_most_positions_of_a_proposed_key_from_thousands_of_ciphertexts() -> None:
    victim = load_dataset("natural", "test", (32, 32), n=3000, seed=4).images
    attack, cipher = _puzzle(CipherFamily("proposed", (32, 32), 4), victim, seed=9)
    assert positions_recovered(attack, cipher, 3, (32, 32)) >= 0.9


def test_other_ciphers_get_a_reason() -> None:
    puzzle = attacks.get("puzzle")
    assert "own key" in puzzle.applies_to(CipherFamily("pe", (32, 32), 1))
    assert "extended_jigsaw" in puzzle.applies_to(CipherFamily("etc", (32, 32), 4))
    assert puzzle.applies_to(CipherFamily("proposed", (32, 32), 4)) is None


def test_bad_restarts_raise() -> None:
    with pytest.raises(ValueError, match="restarts"):
        attacks.get("puzzle")(restarts=-1)
