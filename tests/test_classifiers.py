"""Properties of the individual classifiers: ShakeDrop's rule, PyramidNet's shape, the adaptation network, ViT and ResNet options and weights files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ciphers.base import block_scramble_map, spatial_to_flat
from harness.classifiers.adaptation import BlockAdaptation, doubly_stochastic_penalty
from harness.classifiers.base import seeded
from harness.classifiers.shakedrop import PyramidNet, ShakeDrop, ShakeDropFunction
from harness.registry import create_cipher
from harness.registry import classifiers

pytestmark = pytest.mark.usefixtures("single_thread")


# -- ShakeDrop -----------------------------------------------------------------------------------
def test_shakedrop_function_uses_alpha_forward_and_beta_backward() -> None:
    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    gate = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(4, 1, 1, 1)
    alpha = torch.tensor([-0.7, -0.5, 0.25, 0.9]).view(4, 1, 1, 1)
    beta = torch.tensor([0.1, 0.3, 0.8, 0.6]).view(4, 1, 1, 1)
    y = ShakeDropFunction.apply(x, gate, alpha, beta)
    expected_scale = torch.tensor([1.0, -0.5, 0.25, 1.0]).view(4, 1, 1, 1)
    torch.testing.assert_close(y, x * expected_scale, rtol=0, atol=0)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    gradient_scale = torch.tensor([1.0, 0.3, 0.8, 1.0]).view(4, 1, 1, 1)
    torch.testing.assert_close(x.grad, upstream * gradient_scale, rtol=0, atol=0)


def test_shakedrop_module_expectations_and_eval_scale() -> None:
    p = 0.4
    module = ShakeDrop(p)
    x = torch.ones(200_000, 1, requires_grad=True)
    with seeded(0):
        y = module(x)
    # E[gate + alpha (1 - gate)] = 1 - p; E[gate + beta (1 - gate)] = 1 - p + p / 2
    assert abs(y.mean().item() - (1 - p)) < 0.01
    y.sum().backward()
    assert abs(x.grad.mean().item() - (1 - p / 2)) < 0.01
    assert set(torch.unique(x.grad[y.detach() == 1]).tolist()) == {1.0}, "kept samples pass gradients unchanged"
    module.eval()
    torch.testing.assert_close(module(torch.full((3, 2), 2.0)), torch.full((3, 2), 2.0 * (1 - p)))


def test_shakedrop_with_zero_drop_is_the_identity_in_training() -> None:
    x = torch.randn(8, 4, requires_grad=True)
    y = ShakeDrop(0.0).train()(x)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_pyramidnet_widens_linearly_and_drops_more_deeper() -> None:
    net = PyramidNet(depth=20, alpha=48, num_classes=10, in_chans=3, stem_width=16, p_drop_max=0.5)
    units = list(net.units)
    assert len(units) == 9
    widths = [u.branch[1].out_channels for u in units]
    assert widths == [16 + int(48 * (i + 1) / 9) for i in range(9)] and widths[-1] == 64
    assert [u.shake.p_drop for u in units] == pytest.approx([0.5 * (i + 1) / 9 for i in range(9)])
    assert [u.branch[1].stride[0] for u in units] == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert net.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_shakedrop_depth_must_be_6n_plus_2() -> None:
    with pytest.raises(ValueError, match="depth must be 6n"):
        classifiers.get("shakedrop").build(num_classes=10, image_size=(32, 32), block_size=1, depth=12)


# -- adaptation network --------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "per_position"), [("le", False), ("ele", True), ("etc", True), ("proposed", False), ("plain", False)])
def test_adaptation_is_per_position_for_per_position_ciphers(name: str, per_position: bool) -> None:
    cipher = create_cipher(name, (16, 16), 4 if name != "plain" else 1, seed=0)
    options = classifiers.get("adaptation").for_cipher(cipher, {})
    assert options["per_position"] is per_position  # from the cipher's traits, not its name
    assert classifiers.get("adaptation").for_cipher(cipher, {"per_position": True})["per_position"] is True


def _adaptation(per_position: bool, mix_blocks: bool, grid: tuple[int, int] = (4, 4)) -> BlockAdaptation:
    with seeded(0):
        return BlockAdaptation(
            in_chans=3, block_size=4, grid=grid, out_chans=2, per_position=per_position, mix_blocks=mix_blocks
        ).eval()


def test_per_position_weights_equal_to_the_shared_ones_give_the_shared_network() -> None:
    shared, positional = _adaptation(False, False), _adaptation(True, False)
    with torch.no_grad():
        positional.position_weight.copy_(shared.embed.weight.flatten(1).expand_as(positional.position_weight))
    x = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(positional(x), shared(x), rtol=1e-5, atol=1e-5)


def test_adaptation_is_block_local() -> None:
    layer = _adaptation(True, True)
    x = torch.rand(2, 3, 16, 16)
    changed = x.clone()
    changed[:, :, 4:8, 8:12] = torch.rand(2, 3, 4, 4)  # block (1, 2)
    difference = (layer(changed) - layer(x)).abs().sum(dim=(0, 1)) > 0
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:8, 8:12] = True
    assert torch.equal(difference, expected)


def test_block_mixing_can_undo_a_block_scramble() -> None:
    layer = _adaptation(False, True)
    block_perm = torch.randperm(16, generator=torch.Generator().manual_seed(1)).numpy()
    scramble = torch.from_numpy(spatial_to_flat(block_scramble_map(16, 16, 4, block_perm), 3))
    x = torch.rand(2, 3, 16, 16)
    scrambled = x.flatten(1)[:, scramble].view_as(x)
    expected = layer(x)
    with torch.no_grad():  # output block i holds input block K1[i]: mix it back to position K1[i]
        layer.mix.copy_(torch.eye(16)[:, block_perm].T)
    torch.testing.assert_close(layer(scrambled), expected, rtol=1e-5, atol=1e-6)


def test_doubly_stochastic_penalty_is_zero_exactly_on_permutations() -> None:
    permutation = torch.eye(5)[torch.tensor([3, 0, 4, 1, 2])]
    assert doubly_stochastic_penalty(permutation).item() == 0.0
    assert doubly_stochastic_penalty(torch.full((5, 5), 0.2)).item() > 1.0


def test_adaptation_builds_for_a_real_ele_cipher_and_reports_its_penalty() -> None:
    cipher = create_cipher("ele", (16, 16), block_size=4, seed=0)
    cls = classifiers.get("adaptation")
    options = cls.for_cipher(cipher, dict(cls.small_options))
    model = cls.build(num_classes=3, image_size=(16, 16), block_size=4, **options)
    assert model.net.adapt.per_position and model.net.adapt.mix is not None
    assert model.auxiliary_loss().item() == 0.0, "the identity start is a permutation"
    assert cls.resolve_options(image_size=(16, 16), block_size=4, **options)["dsc_weight"] == pytest.approx(1e-3 / 256)


def test_adaptation_rejects_a_derived_backbone() -> None:
    with pytest.raises(ValueError, match="backbone"):
        classifiers.get("adaptation").build(num_classes=3, image_size=(16, 16), block_size=4, backbone="vit_keyed")


# -- ViT -----------------------------------------------------------------------------------------
def test_vit_patch_size_follows_the_block_size() -> None:
    cls = classifiers.get("vit")
    assert cls.resolve_options(image_size=(32, 32), block_size=8)["patch_size"] == 8
    assert cls.resolve_options(image_size=(32, 32), block_size=1)["patch_size"] == 4
    assert cls.resolve_options(image_size=(224, 224), block_size=1)["patch_size"] == 16
    assert cls.resolve_options(image_size=(32, 32), block_size=1, patch_size=8)["patch_size"] == 8
    with pytest.raises(ValueError, match="patch_size 4 differs from the cipher's block_size 8"):
        cls.resolve_options(image_size=(32, 32), block_size=8, patch_size=4)
    model = cls.build(num_classes=3, image_size=(32, 32), block_size=8, **cls.small_options)
    assert tuple(model.net.patch_embed.patch_size) == (8, 8)


def test_vit_size_presets_reach_vit_base() -> None:
    resolved = classifiers.get("vit").resolve_options(image_size=(224, 224), block_size=16, size="base")
    assert (resolved["embed_dim"], resolved["depth"], resolved["num_heads"]) == (768, 12, 12)
    with pytest.raises(ValueError, match="size must be one of"):
        classifiers.get("vit").resolve_options(image_size=(32, 32), block_size=4, size="huge")


def test_vit_keyed_needs_the_proposed_cipher_and_its_block_size() -> None:
    cls = classifiers.get("vit_keyed")
    proposed = create_cipher("proposed", (32, 32), block_size=8, seed=0)
    assert cls.for_cipher(proposed, {"size": "nano"}) == {"size": "nano", "patch_size": 8}
    with pytest.raises(ValueError, match="patch_size=4"):
        cls.for_cipher(proposed, {"patch_size": 4})
    with pytest.raises(ValueError, match="only with the 'proposed' cipher, got 'le'"):
        cls.for_cipher(create_cipher("le", (32, 32), block_size=4, seed=0), {})


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vit_loads_a_local_weights_file(tmp_path: Path, suffix: str) -> None:
    cls = classifiers.get("vit")
    source = cls.build(num_classes=5, image_size=(16, 16), block_size=4, seed=1, **cls.small_options)
    path = _save(source.net.state_dict(), tmp_path / f"vit{suffix}")
    loaded = cls.build(num_classes=5, image_size=(16, 16), block_size=4, seed=2, weights_file=str(path), **cls.small_options)
    expected = source.net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.net.state_dict().items())
    # fine-tuning to another label set keeps the backbone and re-initialises the head
    other = cls.build(num_classes=3, image_size=(16, 16), block_size=4, weights_file=str(path), **cls.small_options)
    for key, value in other.net.state_dict().items():
        if key.startswith("head."):
            assert value.shape[0] == 3
        else:
            assert torch.equal(value, expected[key]), key


def test_resnet18_loads_imagenet_style_weights_under_the_cifar_stem(tmp_path: Path) -> None:
    cls = classifiers.get("resnet18")
    source = cls.build(num_classes=4, image_size=(32, 32), block_size=1, seed=1, width=8, cifar_stem=False)
    path = _save(source.net.state_dict(), tmp_path / "resnet.pth")
    same = cls.build(num_classes=4, image_size=(32, 32), block_size=1, seed=2, width=8, cifar_stem=False, weights_file=str(path))
    cifar = cls.build(num_classes=4, image_size=(32, 32), block_size=1, seed=2, width=8, weights_file=str(path))
    expected = source.net.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in same.net.state_dict().items())
    assert cifar.net.conv1.kernel_size == (3, 3) and cifar.net.conv1.stride == (1, 1)
    assert isinstance(cifar.net.maxpool, torch.nn.Identity)
    assert all(torch.equal(v, expected[k]) for k, v in cifar.net.state_dict().items() if not k.startswith("conv1."))


def test_resnet18_stem_and_width_follow_the_options() -> None:
    cls = classifiers.get("resnet18")
    assert cls.resolve_options(image_size=(32, 32), block_size=1)["cifar_stem"] is True
    assert cls.resolve_options(image_size=(224, 224), block_size=1)["cifar_stem"] is False
    model = cls.build(num_classes=10, image_size=(32, 32), block_size=1, width=16)
    assert [model.net.get_submodule(f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [16, 32, 64, 128]
    standard = cls.resolve_options(image_size=(32, 32), block_size=1)
    assert standard["width"] == 64


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights_file .* does not exist"):
        classifiers.get("vit").build(num_classes=3, image_size=(16, 16), block_size=4, weights_file=str(tmp_path / "none.pth"))
