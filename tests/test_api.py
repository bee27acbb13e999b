"""``import scramblebench``: the public API and its docstring example (run here as a doctest)."""

from __future__ import annotations

import doctest

import pytest
import torch

import scramblebench
from scramblebench import BenchmarkError, create_cipher, load_run, security_cell

TINY = {"n_train": 20, "n_test": 20, "n_attacker": 10, "image_size": [16, 16], "known_pairs": 4}


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(scramblebench, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 8 and result.failed == 0


def test_public_names_resolve() -> None:
    for name in scramblebench.__all__:
        assert hasattr(scramblebench, name), name
    assert "le" in scramblebench.ciphers.names() and "fr" in scramblebench.attacks.names()


def test_create_cipher_is_seeded_and_invertible() -> None:
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a, b = create_cipher("proposed", seed=3, image_size=(16, 16), block_size=4), create_cipher("proposed", seed=3, image_size=(16, 16), block_size=4)
    assert torch.equal(a.encrypt(images), b.encrypt(images)) and torch.equal(a.decrypt(a.encrypt(images)), images)
    with pytest.raises(KeyError, match="Did you mean"):
        create_cipher("propsed")


def test_one_security_cell_then_read_the_folder_back(tmp_path) -> None:
    run = security_cell(tmp_path / "run", "natural", "pe", "none", config=TINY)
    assert run.exit_code == 0
    again = load_run(tmp_path / "run")
    cells = again.results.query("kind == 'security'")[["cipher", "attack"]].drop_duplicates()
    assert cells.values.tolist() == [["pe", "none"]]
    assert 0.0 <= again.mean("security", "natural", "pe", "none", "ssim") <= 1.0 and again.report_path.exists()
    assert again.metadata["config"]["known_pairs"] == 4


def test_refused_arguments_raise_and_a_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(BenchmarkError, match="Did you mean 'proposed'"):
        scramblebench.benchmark(tmp_path / "x", ciphers=["propsed"], config=TINY)
    with pytest.raises(FileNotFoundError, match="not a scramblebench run folder"):
        load_run(tmp_path / "nothing")
