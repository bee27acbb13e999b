"""The model holder reads a keyed ViT's key: exactly with the public checkpoint, approximately after
the weights moved, and up to the grid's symmetries from smooth weights alone; through the runner,
the ``weights_*`` attacks read the accuracy cells' models and the report gives a model-holder verdict."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from attacks._model_holder import pixel_perm_from_patch_index, read_key_with_checkpoint, read_key_without_checkpoint
from harness.classifiers.vit_keyed import keyed_vit
from harness.registry import create_cipher
from harness.results import ResultStore
from harness.run.plan import Cell, dependencies
from reports.tables import security_verdict
from reports.verdicts import MODEL_HOLDER, RESTORES, model_verdict


def _vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, num_classes=10)


@pytest.fixture(scope="module")
def keyed() -> tuple[VisionTransformer, VisionTransformer, object]:
    public = _vit()
    cipher = create_cipher("proposed", (32, 32), 8, seed=7)
    return public, keyed_vit(public, cipher), cipher


def test_the_public_checkpoint_gives_the_whole_key(keyed) -> None:
    public, transformed, cipher = keyed
    block_perm, patch_index, cost = read_key_with_checkpoint(transformed, public)
    key = cipher.key()
    assert cost < 1e-12 and np.array_equal(block_perm, key["block_perm"])
    assert np.array_equal(pixel_perm_from_patch_index(patch_index, 8, 3), key["pixel_perm"])
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    recovered = cipher.rebuild(block_perm=block_perm, pixel_perm=pixel_perm_from_patch_index(patch_index, 8, 3))
    assert torch.equal(recovered.decrypt(cipher.encrypt(images)), images)


def test_weights_that_moved_still_give_most_of_the_key(keyed) -> None:
    public, transformed, cipher = keyed
    moved = _vit()
    moved.load_state_dict(transformed.state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a stand-in for fine-tuning: every weight moves by 30% of its spread
        for tensor in (moved.patch_embed.proj.weight, moved.pos_embed):
            tensor.add_(0.3 * tensor.std() * torch.randn(tensor.shape, generator=generator))
    block_perm, patch_index, _ = read_key_with_checkpoint(moved, public)
    key = cipher.key()
    pixel_perm = pixel_perm_from_patch_index(patch_index, 8, 3)
    share = (np.sum(block_perm == key["block_perm"]) + np.sum(pixel_perm == key["pixel_perm"])) / (16 + 16)
    assert share > 0.9


def _smooth_vit() -> VisionTransformer:
    """A ViT whose filters and position embedding are smooth, as trained ones are (no checkpoint needed)."""
    vit = _vit(1)
    grid = torch.linspace(0, 1, 8)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    frequencies = torch.randn(48, 2, generator=torch.Generator().manual_seed(2)) * 1.5
    phases = torch.rand(48, 3, generator=torch.Generator().manual_seed(3)) * 2 * math.pi
    filters = torch.stack([torch.sin(frequencies[:, :1, None] * rows + frequencies[:, 1:, None] * cols + phases[:, c, None, None])
                           for c in range(3)], dim=1)
    patch_grid = torch.linspace(0, 1, 4)
    prow, pcol = torch.meshgrid(patch_grid, patch_grid, indexing="ij")
    pos = torch.sin(frequencies[:, :1, None] * prow + frequencies[:, 1:, None] * pcol + phases[:, :1, None]).flatten(1).T
    with torch.no_grad():
        vit.patch_embed.proj.weight.copy_(filters)
        vit.pos_embed[0, 1:].copy_(pos)
    return vit


def _grid_symmetries(side: int) -> list[np.ndarray]:
    cells = np.arange(side * side).reshape(side, side)
    return [np.flip(np.rot90(cells, turns), 1).reshape(-1) if mirror else np.rot90(cells, turns).reshape(-1)
            for turns in range(4) for mirror in (False, True)]


def test_smooth_weights_alone_give_the_key_up_to_a_grid_symmetry() -> None:
    cipher = create_cipher("proposed", (32, 32), 8, seed=11)
    transformed = keyed_vit(_smooth_vit(), cipher)
    block_perm, pixel_perm = read_key_without_checkpoint(transformed, 8)
    key = cipher.key()
    assert any(np.array_equal(block_perm, g[key["block_perm"]]) for g in _grid_symmetries(4))
    assert any(np.array_equal(pixel_perm, g[key["pixel_perm"]]) for g in _grid_symmetries(4))


# -- the model-holder threat model through the runner ---------------------------------------------
TINY_VIT = ("n_train: 60\nn_test: 48\nn_attacker: 20\nimage_size: [16, 16]\nknown_pairs: 8\nexamples: 2\n"
            "classifiers:\n  vit: {epochs: 1, batch_size: 32, model_options: {size: nano, patch_size: 4, embed_dim: 16, depth: 1, num_heads: 2}}\n")


@pytest.fixture(scope="module")
def holder_run(tmp_path_factory) -> Path:
    """A tiny grid: the plain and proposed ViTs, the keyed one, and the model holder's attacks."""
    from harness.run.cli import main

    folder = tmp_path_factory.mktemp("holder")
    (folder / "tiny.yaml").write_text(TINY_VIT)
    argv = ["--config", str(folder / "tiny.yaml"), "--ciphers", "plain,proposed,le", "--classifiers", "vit,vit_keyed",
            "--attacks", "none,mean_colour,weights_*", "--kinds", "accuracy,security", "--out", str(folder / "run"), "--progress", "none"]
    assert main(argv, stdout=lambda line: None) == 0
    return folder / "run"


def _rows(run: Path, attack: str) -> dict[str, float]:
    frame = ResultStore(run).load()
    cell = frame[(frame["cipher"] == "proposed") & (frame["attack"] == attack) & (frame["status"] == "ok")]
    return dict(zip(cell["metric"], cell["value"]))


def test_the_checkpoint_attack_reads_the_whole_key_and_the_verdict_is_restores(holder_run) -> None:
    rows = _rows(holder_run, "weights_checkpoint")
    assert rows["key_entries_recovered"] == 1.0 and rows["ssim"] == pytest.approx(1.0)
    store = ResultStore(holder_run)
    frame, per_image, run = store.load(), store.load_per_image(), store.read_run()
    assert model_verdict(frame, per_image, run, "natural", "proposed", MODEL_HOLDER, "keyed").symbol == RESTORES
    assert model_verdict(frame, per_image, run, "natural", "proposed", MODEL_HOLDER).deciding.attack == "weights_checkpoint"
    report = (holder_run / "report.md").read_text()
    assert "model-holder attacks" in report and "✗ (weights_checkpoint SSIM 1.00" in report


def test_the_finetuned_and_smooth_cases_report_a_key_share_and_ssim_without_training_anything(holder_run) -> None:
    for attack in ("weights_finetuned", "weights_smooth"):
        rows = _rows(holder_run, attack)
        assert 0.0 <= rows["key_entries_recovered"] <= 1.0 and -1.0 <= rows["ssim"] <= 1.0
    # the security cells read the accuracy cells' models: the cache holds the two trained ViTs only
    assert sorted(p.name.split("-")[1] for p in (holder_run / "cache").glob("vit-*.pt")) == ["plain", "proposed"]


def test_a_cipher_without_a_model_transform_has_no_model_holder_attack(holder_run) -> None:
    store = ResultStore(holder_run)
    frame, per_image, run = store.load(), store.load_per_image(), store.read_run()
    le = frame[(frame["cipher"] == "le") & frame["attack"].str.startswith("weights_")]
    assert set(le["status"]) == {"n/a"}
    assert security_verdict(frame, per_image, run, "natural", "le", MODEL_HOLDER) == "n/a (no model-holder attack applies)"


def test_model_holder_cells_wait_for_the_models_they_read() -> None:
    finetuned = Cell("security", "natural", "proposed", attack="weights_finetuned")
    assert dependencies(finetuned) == (Cell("accuracy", "natural", "plain", classifier="vit"),
                                       Cell("accuracy", "natural", "proposed", classifier="vit"))
    assert dependencies(Cell("security", "natural", "proposed", attack="weights_checkpoint")) == (
        Cell("accuracy", "natural", "plain", classifier="vit"),)
    assert dependencies(Cell("security", "natural", "le", attack="weights_finetuned")) == ()


def test_the_checkpoint_attack_reads_a_vit_kiya_key_too() -> None:
    from attacks.base import AttackConfig, CipherFamily, ProviderModels
    from attacks.weights import CheckpointAttack
    from harness.classifiers.vit_kiya_keyed import kiya_keyed_vit

    family = CipherFamily("vit_kiya", (32, 32), 8)
    cipher = family.draw(5)
    public = _vit()
    attack = CheckpointAttack()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    attack.fit(images, family, AttackConfig(), models=ProviderModels(keyed=kiya_keyed_vit(public, cipher), checkpoint=public))
    assert all(np.array_equal(attack.key[name], value) for name, value in cipher.key().items())
    assert torch.equal(attack.restore(cipher.encrypt(images)), images)


def test_a_model_holder_cell_is_recomputed_when_the_models_it_reads_change() -> None:
    from harness.run import identity
    from harness.run.config import resolve_config

    config = resolve_config("quick")
    retrained = {**config, "classifiers": {**config["classifiers"], "vit": {**config["classifiers"]["vit"], "epochs": 5}}}
    holder = Cell("security", "natural", "proposed", attack="weights_finetuned")
    none = Cell("security", "natural", "proposed", attack="none")
    assert identity.identity(retrained, holder) != identity.identity(config, holder)
    assert identity.identity(retrained, none) == identity.identity(config, none)
    assert "harness/training.py" in {str(p.relative_to(identity.REPO_ROOT)) for p in identity._source_files(holder)}


# -- CFE (``vit_cfe_keyed``): signed within-block maps, one (V1) or one per main block (V2) -------
@pytest.mark.parametrize("name", ["cfe_v1", "cfe_v2"])
def test_the_checkpoint_attack_reads_a_cfe_key_exactly(name: str) -> None:
    from attacks.base import AttackConfig, CipherFamily, ProviderModels
    from attacks.weights import CheckpointAttack
    from harness.classifiers.vit_cfe_keyed import cfe_keyed_vit

    family = CipherFamily(name, (32, 32), 8, {"sub_block_size": 4})
    cipher = family.draw(5)
    public = _vit()
    attack = CheckpointAttack()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    attack.fit(images, family, AttackConfig(), models=ProviderModels(keyed=cfe_keyed_vit(public, cipher), checkpoint=public))
    recovered = attack.recovered_cipher
    assert attack.extra["match_cost"] < 1e-12
    assert np.array_equal(recovered.index_map(3, 32, 32), cipher.index_map(3, 32, 32))
    assert np.array_equal(recovered.xor_mask(3, 32, 32), cipher.xor_mask(3, 32, 32))
    assert torch.equal(attack.restore(cipher.encrypt(images)), images)


@pytest.mark.parametrize("attack", ["weights_finetuned", "weights_smooth"])
def test_the_other_model_holder_attacks_say_why_they_do_not_read_a_cfe_key(attack: str) -> None:
    from attacks.base import CipherFamily
    from harness.registry import attacks

    for name in ("cfe_v1", "cfe_v2"):
        reason = attacks.get(attack).applies_to(CipherFamily(name, (32, 32), 8, {"sub_block_size": 4}))
        assert reason is not None and name in reason and attack in reason
    assert attacks.get("weights_checkpoint").applies_to(CipherFamily("cfe_v2", (32, 32), 8, {"sub_block_size": 4})) is None


def test_a_nearly_exact_piece_map_is_read_by_votes() -> None:
    from ciphers.pieces import pieces_of_map

    cipher = create_cipher("cfe_v2", (32, 32), 8, seed=3, sub_block_size=4)
    shape = (3, 32, 32)
    index, mask = cipher.index_map(*shape), cipher.xor_mask(*shape)
    exact = pieces_of_map(index, mask, shape, 4)
    noisy_index, noisy_mask = index.copy(), mask.copy()
    wrong = np.random.default_rng(0).choice(index.size, 40, replace=False)  # at most a few entries per piece
    noisy_index[wrong], noisy_mask[wrong] = noisy_index[wrong[::-1]], 255 - noisy_mask[wrong]
    with pytest.raises(ValueError, match="pieces"):
        pieces_of_map(noisy_index, noisy_mask, shape, 4)
    voted = pieces_of_map(noisy_index, noisy_mask, shape, 4, exact=False)
    for field in ("source", "geometry", "channel_order", "negpos"):
        assert np.array_equal(getattr(voted, field), getattr(exact, field)), field
