"""keyed_vit: a plain ViT transformed with the proposed key reads ciphertexts with identical logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from ciphers.base import spatial_to_flat
from ciphers.proposed import ProposedCipher
from harness.classifiers import keyed_vit
from harness.classifiers.base import ImageClassifier, seeded
from harness.classifiers.vit_keyed import patch_pixel_permutation
from harness.registry import create_cipher
from harness.registry import classifiers

pytestmark = pytest.mark.usefixtures("single_thread")

#: (block size, image size, ViT token/pooling variant)
CASES = [
    (2, (8, 8), {}),
    (4, (16, 16), {}),
    (4, (16, 24), {"class_token": False, "global_pool": "avg"}),
    (8, (32, 32), {"no_embed_class": True}),
    (8, (16, 32), {"reg_tokens": 2}),
    (16, (32, 32), {"global_pool": "avg"}),
]


def _vit(block: int, size: tuple[int, int], seed: int = 0, **variant: object) -> ImageClassifier:
    """A random two-layer timm ViT, scaled so its logits depend strongly on the input."""
    with seeded(seed):
        net = VisionTransformer(
            img_size=size, patch_size=block, num_classes=7, embed_dim=24, depth=2, num_heads=2, mlp_ratio=2.0, **variant
        )
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if parameter.ndim >= 2 and name not in ("pos_embed", "cls_token", "reg_token"):
                    parameter.normal_(0, parameter[0].numel() ** -0.5)
                else:
                    parameter.normal_(0, 0.5)
    return ImageClassifier(net, in_chans=3).eval()


def _images(size: tuple[int, int], batch: int = 5, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("block, size, variant", CASES)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_keyed_logits_on_ciphertexts_equal_plain_logits(block, size, variant, dtype, tolerance) -> None:
    model = _vit(block, size, **variant).to(dtype)
    cipher = ProposedCipher.from_seed(7, image_size=size, block_size=block)
    x = _images(size)
    keyed = keyed_vit(model, cipher)
    with torch.no_grad():
        plain_logits, keyed_logits = model(x), keyed(cipher.encrypt(x))
        untransformed = model(cipher.encrypt(x))
    assert keyed_logits.dtype == dtype
    assert (keyed_logits - plain_logits).abs().max() < tolerance
    assert (untransformed - plain_logits).abs().max() > 1e-3, "the control (no transformation) must differ"


def test_bare_timm_vit_is_accepted_and_returned_as_a_copy() -> None:
    model = _vit(4, (16, 16))
    net = model.net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cipher = ProposedCipher.from_seed(3, image_size=(16, 16), block_size=4)
    keyed = keyed_vit(net, cipher)
    assert isinstance(keyed, VisionTransformer) and keyed is not net
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the input model must not change"
    x = _images((16, 16))
    with torch.no_grad():
        expected = net((x.float() / 255 - 0.5) / 0.5)
        got = keyed((cipher.encrypt(x).float() / 255 - 0.5) / 0.5)
    assert (got - expected).abs().max() < 1e-4


def test_registered_vit_can_be_keyed() -> None:
    cls = classifiers.get("vit")
    model = cls.build(num_classes=4, image_size=(16, 16), block_size=4, seed=1, **cls.small_options).eval()
    cipher = create_cipher("proposed", (16, 16), block_size=4, seed=2)
    x = _images((16, 16))
    with torch.no_grad():
        assert (keyed_vit(model, cipher)(cipher.encrypt(x)) - model(x)).abs().max() < 1e-4


@pytest.mark.parametrize("block", [2, 4, 8, 16])
def test_patch_permutation_is_the_ciphers_within_block_map_in_chw_order(block: int) -> None:
    cipher = ProposedCipher.from_seed(block, image_size=(block, block), block_size=block)
    expected = spatial_to_flat(cipher.pixel_shuffle_map(block, block), 3)
    got = patch_pixel_permutation(cipher.pixel_perm, block, 3)
    np.testing.assert_array_equal(got, expected)
    # and it is what encryption does to one block's (c, row, col) flattening
    x = _images((block, block), batch=1)
    np.testing.assert_array_equal(cipher.encrypt(x).flatten().numpy(), x.flatten().numpy()[got])


def test_wrong_block_size_is_a_clear_error() -> None:
    model = _vit(4, (16, 16))
    cipher = ProposedCipher.from_seed(0, image_size=(16, 16), block_size=8)
    with pytest.raises(ValueError, match=r"block_size 8 must equal the ViT's patch size \(4, 4\)"):
        keyed_vit(model, cipher)


def test_key_for_another_image_size_is_a_clear_error() -> None:
    model = _vit(4, (16, 16))
    cipher = ProposedCipher.from_seed(0, image_size=(32, 32), block_size=4)
    with pytest.raises(ValueError, match="64 blocks but the ViT has 16 patches"):
        keyed_vit(model, cipher)


def test_other_ciphers_and_models_are_rejected() -> None:
    with pytest.raises(ValueError, match="only with the 'proposed' cipher, got 'plain'"):
        keyed_vit(_vit(4, (16, 16)), create_cipher("plain", (16, 16)))
    cipher = ProposedCipher.from_seed(0, image_size=(16, 16), block_size=4)
    with pytest.raises(ValueError, match="VisionTransformer"):
        keyed_vit(torch.nn.Linear(3, 3), cipher)
