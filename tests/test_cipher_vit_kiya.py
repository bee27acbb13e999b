"""vit_kiya (Kiya et al. 2023): a loop reference in timm's (channel, row, column) patch order, hand
examples, key spaces, validation, seeding, and the exact keyed ViT (logits on encrypt(x) equal the
plain model's on x)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.models.vision_transformer import VisionTransformer

from ciphers.proposed import ProposedCipher
from ciphers.vit_kiya import VitKiyaCipher
from harness import create_cipher
from harness.classifiers.base import ImageClassifier, seeded
from harness.classifiers.vit_kiya_keyed import VitKiyaKeyedClassifier, kiya_keyed_vit
from harness.keys import log2_factorial, rng
from harness.registry import classifiers

pytestmark = pytest.mark.usefixtures("single_thread")

def reference_encrypt(image: np.ndarray, m: int, block_perm: np.ndarray, pixel_perm: np.ndarray) -> np.ndarray:
    """Loops: cut [C, H, W] into M x M patches, scramble them, gather each C*M*M (CHW) vector by K2."""
    c, h, w = image.shape
    cols = w // m
    patches = [image[:, (i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m] for i in range((h // m) * cols)]
    out = np.empty_like(image)
    for i, source in enumerate(block_perm):
        vector = patches[source].reshape(-1)[pixel_perm]
        out[:, (i // cols) * m : (i // cols + 1) * m, (i % cols) * m : (i % cols + 1) * m] = vector.reshape(c, m, m)
    return out


def _images(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=generator)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 5), rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 3))
def test_matches_the_loop_reference_and_round_trips(m, rows, cols, seed, batch) -> None:
    size = (rows * m, cols * m)
    cipher = VitKiyaCipher.from_seed(seed, image_size=size, block_size=m)
    x = _images(batch, size, seed % 997)
    y = cipher.encrypt(x)
    for i in range(batch):
        assert np.array_equal(y[i].numpy(), reference_encrypt(x[i].numpy(), m, cipher.block_perm, cipher.pixel_perm))
    assert torch.equal(cipher.decrypt(y), x)


def test_hand_computed_example() -> None:
    """Two 1 x 1 blocks swapped, then each pixel's (R, G, B) gathered by K2 = (1, 2, 0)."""
    x = torch.tensor([[[[1, 2]], [[3, 4]], [[5, 6]]]], dtype=torch.uint8)  # [1, 3, 1, 2]: pixels (1,3,5), (2,4,6)
    y = VitKiyaCipher(1, [1, 0], [1, 2, 0]).encrypt(x)
    assert y[0, :, 0, 0].tolist() == [4, 6, 2] and y[0, :, 0, 1].tolist() == [3, 5, 1]


def test_pixel_perm_is_in_chw_order() -> None:
    """Entry j of the patch vector is channel j // M^2, raster position j % M^2 (timm's flattening)."""
    m = 2
    pixel_perm = np.arange(12)
    pixel_perm[[0, 4]] = [4, 0]  # swap (R, pixel 0) with (G, pixel 0)
    x = torch.arange(12, dtype=torch.uint8).view(1, 3, 2, 2)
    y = VitKiyaCipher(m, [0], pixel_perm).encrypt(x)
    assert y[0, 0, 0, 0] == x[0, 1, 0, 0] and y[0, 1, 0, 0] == x[0, 0, 0, 0]
    assert torch.equal(y[0, 2], x[0, 2])


@pytest.mark.parametrize("size, m, expected", [((32, 32), 4, 498.94), ((224, 224), 16, 7474.23)])
def test_key_space(size, m, expected) -> None:
    cipher = VitKiyaCipher.from_seed(0, size, m)
    n = (size[0] // m) * (size[1] // m)
    assert cipher.key_space() == cipher.effective_key_space() == math.factorial(n) * math.factorial(3 * m * m)
    assert cipher.key_space_log2() == pytest.approx(log2_factorial(n) + log2_factorial(3 * m * m), rel=1e-12)
    assert cipher.key_space_log2() == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: VitKiyaCipher(4, np.arange(4), np.arange(47)), "pixel_perm"),
        (lambda: VitKiyaCipher(4, np.arange(4), np.r_[0, 0, np.arange(2, 48)]), "pixel_perm"),
        (lambda: VitKiyaCipher(4, [0, 0, 1, 2], np.arange(48)), "block_perm"),
        (lambda: VitKiyaCipher(4, np.arange(4)[None], np.arange(48)), "block_perm"),
        (lambda: VitKiyaCipher.from_seed(0, (32, 30), 4), "divisible"),
        (lambda: VitKiyaCipher.from_seed(0, (32, 32), 4, colour=True), "colour"),
    ],
)
def test_validation_errors(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_block_key_for_another_size_is_refused() -> None:
    cipher = VitKiyaCipher(4, np.arange(4), np.arange(48))
    with pytest.raises(ValueError, match="block_perm"):
        cipher.encrypt(_images(1, (16, 32)))


def test_seeded_key_is_the_documented_draw_and_deterministic() -> None:
    generator = rng(5)
    block_perm, pixel_perm = generator.permutation(64), generator.permutation(48)
    cipher = create_cipher("vit_kiya", (32, 32), seed=5)
    assert np.array_equal(cipher.block_perm, block_perm) and np.array_equal(cipher.pixel_perm, pixel_perm)
    x = _images(4, (32, 32), 1)
    again = create_cipher("vit_kiya", (32, 32), seed=5)
    assert torch.equal(cipher.encrypt(x), again.encrypt(x))
    assert torch.equal(cipher.encrypt(x), torch.cat([cipher.encrypt(x[i : i + 1]) for i in range(4)]))


# -- the keyed ViT ------------------------------------------------------------------------------
def _vit(block: int, size: tuple[int, int], seed: int = 0, **variant: object) -> ImageClassifier:
    """A random two-layer timm ViT, scaled so its logits depend strongly on the input."""
    with seeded(seed):
        net = VisionTransformer(
            img_size=size, patch_size=block, num_classes=5, embed_dim=24, depth=2, num_heads=2, mlp_ratio=2.0, **variant
        )
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if parameter.ndim >= 2 and name not in ("pos_embed", "cls_token", "reg_token"):
                    parameter.normal_(0, parameter[0].numel() ** -0.5)
                else:
                    parameter.normal_(0, 0.5)
    return ImageClassifier(net, in_chans=3).eval()


@pytest.mark.parametrize(
    "block, size, variant",
    [(4, (16, 16), {}), (4, (16, 24), {"class_token": False, "global_pool": "avg"}), (8, (16, 32), {"reg_tokens": 2}), (8, (32, 32), {"no_embed_class": True})],
)
def test_keyed_vit_logits_on_ciphertexts_equal_plain_logits(block, size, variant) -> None:
    model = _vit(block, size, **variant).to(torch.float64)
    cipher = VitKiyaCipher.from_seed(9, image_size=size, block_size=block)
    x = _images(4, size)
    keyed = kiya_keyed_vit(model, cipher)
    with torch.no_grad():
        plain, on_ciphertexts = model(x), keyed(cipher.encrypt(x))
        untransformed = model(cipher.encrypt(x))
    assert on_ciphertexts.dtype == torch.float64
    assert (on_ciphertexts - plain).abs().max() < 1e-10
    assert (untransformed - plain).abs().max() > 1e-3, "the control (no transformation) must differ"


def test_keyed_vit_float32_and_bare_timm_model() -> None:
    model = _vit(4, (16, 16))
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    cipher = VitKiyaCipher.from_seed(2, image_size=(16, 16), block_size=4)
    keyed = kiya_keyed_vit(model.net, cipher)
    assert isinstance(keyed, VisionTransformer) and keyed is not model.net
    assert all(torch.equal(before[k], v) for k, v in model.net.state_dict().items()), "the input model must not change"
    x = _images(3, (16, 16))
    with torch.no_grad():
        got = keyed((cipher.encrypt(x).float() / 255 - 0.5) / 0.5)
        expected = model.net((x.float() / 255 - 0.5) / 0.5)
    assert (got - expected).abs().max() < 1e-4


def test_keyed_classifier_is_registered_and_refuses_other_ciphers() -> None:
    assert classifiers.get("vit_kiya_keyed") is VitKiyaKeyedClassifier
    assert VitKiyaKeyedClassifier.plain_base == "vit"
    cipher = VitKiyaCipher.from_seed(0, (16, 16), 4)
    assert VitKiyaKeyedClassifier.for_cipher(cipher, {"size": "nano"})["patch_size"] == 4
    with pytest.raises(ValueError, match="patch_size"):
        VitKiyaKeyedClassifier.for_cipher(cipher, {"patch_size": 8})
    proposed = ProposedCipher.from_seed(0, (16, 16), 4)
    with pytest.raises(ValueError, match="vit_kiya"):
        VitKiyaKeyedClassifier.for_cipher(proposed, {})
    with pytest.raises(ValueError, match="vit_kiya"):
        kiya_keyed_vit(_vit(4, (16, 16)), proposed)


def test_keyed_vit_refuses_mismatched_models() -> None:
    cipher = VitKiyaCipher.from_seed(0, (16, 16), 4)
    with pytest.raises(ValueError, match="patch size"):
        kiya_keyed_vit(_vit(8, (16, 16)), cipher)
    with pytest.raises(ValueError, match="blocks"):
        kiya_keyed_vit(_vit(4, (32, 16)), cipher)
    with pytest.raises(ValueError, match="VisionTransformer"):
        kiya_keyed_vit(torch.nn.Linear(2, 2), cipher)
