"""CFE-PPAR's compression-friendly encryption (cfe_v1, cfe_v2): a loop reference of the paper's steps,
ciphertexts pinned from the authors' code, key-space closed forms, validation and seeding."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attacks.base import AttackConfig, CipherFamily
from attacks.kpa import choose_solver
from ciphers.cfe import CFEv1Cipher, CFEv2Cipher, draw_sub_keys, geometry_code, mix31
from ciphers.pieces import PieceMap, pieces_of_map
from ciphers.transforms import dihedral_source
from harness import create_cipher
from harness.keys import log2_factorial, rng
from harness.registry import attacks, ciphers

CLASSES = {1: CFEv1Cipher, 2: CFEv2Cipher}


def _tiles(array: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the size x size tiles of a [C, H, W] array, raster order."""
    return [(r, c) for r in range(0, array.shape[1], size) for c in range(0, array.shape[2], size)]


def reference_encrypt(image: np.ndarray, main: int, sub: int, key: dict[str, np.ndarray], per_block: bool) -> np.ndarray:
    """The paper's steps with loops on a [C, H, W] image: per main block (key row = its position before
    scrambling), per sub-block j: rot90, flip, 255 - x, channel order; then sub-block and main-block scrambling."""
    transformed_mains = []
    for p, (top, left) in enumerate(_tiles(image, main)):
        block = image[:, top : top + main, left : left + main].astype(np.int64)
        k = {name: (value[p] if per_block else value) for name, value in key.items() if name != "block_perm"}
        subs = []
        for j, (r, c) in enumerate(_tiles(block, sub)):
            piece = np.rot90(block[:, r : r + sub, c : c + sub], k=int(k["rotation"][j]), axes=(1, 2))
            piece = {0: piece, 1: piece[:, :, ::-1], 2: piece[:, ::-1, :], 3: piece[:, ::-1, ::-1]}[int(k["flip"][j])]
            if k["negpos"][j]:
                piece = 255 - piece
            subs.append(piece[list(k["channel_perm"][j])])
        out_block = np.empty_like(block)
        for i, (r, c) in enumerate(_tiles(block, sub)):
            out_block[:, r : r + sub, c : c + sub] = subs[k["sub_perm"][i]]
        transformed_mains.append(out_block)
    out = np.empty_like(image)
    for i, (top, left) in enumerate(_tiles(image, main)):
        out[:, top : top + main, left : left + main] = transformed_mains[key["block_perm"][i]]
    return out


def _images(batch: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=generator)


@settings(max_examples=25, deadline=None)
@given(
    version=st.sampled_from([1, 2]), sub=st.integers(1, 4), ratio=st.integers(1, 3), rows=st.integers(1, 3),
    cols=st.integers(1, 2), seed=st.integers(0, 2**64 - 1), batch=st.integers(1, 2),
)
def test_matches_the_loop_reference_and_round_trips(version, sub, ratio, rows, cols, seed, batch) -> None:
    main = sub * ratio
    size = (rows * main, cols * main)
    cipher = CLASSES[version].from_seed(seed, image_size=size, block_size=main, sub_block_size=sub)
    x = _images(batch, size, seed % 997)
    y = cipher.encrypt(x)
    for i in range(batch):
        expected = reference_encrypt(x[i].numpy(), main, sub, cipher.key(), version == 2)
        assert np.array_equal(y[i].numpy(), expected)
    assert torch.equal(cipher.decrypt(y), x)


#: sha256 of the [C, H, W] bytes of the authors' ``encrypt_frame(image, seed, variant, 16)`` (importLin/CFE
#: 0a97c61, run once outside the test suite) on the 32 x 32 image below, and its first row's red values
PINNED = {
    (1, 1): ("49daaa55b9efd4f1558f01946afa25a539a63b3cf9ea662fc4f771316f3d1f1d", [82, 227, 116, 5]),
    (1, 2026): ("64a79902c57a2b412df63abc1ff7f34cc3d159a7cbb96b4796217320502781dd", [58, 169, 24, 135]),
    (2, 1): ("6b60de303303e6618863903ac48c32e70a156b611cd044878bcd33179ac0cd9a", [104, 215, 70, 181]),
    (2, 2026): ("475eb70ace51f22d9019862a833f5a35da21f75e22f3def45545ff0cbe32b89d", [151, 183, 215, 247]),
}


@pytest.mark.parametrize("version, seed", sorted(PINNED))
def test_seeded_ciphertexts_equal_the_authors_code(version: int, seed: int) -> None:
    hwc = (np.arange(32 * 32 * 3, dtype=np.int64).reshape(32, 32, 3) * 37 % 256).astype(np.uint8)
    x = torch.from_numpy(hwc).permute(2, 0, 1).contiguous()[None]
    y = CLASSES[version].from_seed(seed, image_size=(32, 32)).encrypt(x)[0]
    digest, first = PINNED[(version, seed)]
    assert y[0, 0, :4].tolist() == first
    assert hashlib.sha256(y.numpy().tobytes()).hexdigest() == digest


def test_mix31_hand_values() -> None:
    """The authors' mixer on one value: h0 ^ (v + 0x9E3779B9 + (h0 << 6) + (h0 >> 2)), low 31 bits."""
    h0, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    for v in (0, 1, 0x57, 2**63):
        assert mix31(v) == (h0 ^ ((v + 0x9E3779B9 + ((h0 << 6) & mask) + (h0 >> 2)) & mask)) & 0x7FFFFFFF
    assert 0 <= mix31(5, 0x57) < 2**31 and mix31(5, 0x57) != mix31(5, 0x35)


def test_seeded_key_is_the_documented_draw() -> None:
    cipher = CFEv2Cipher.from_seed(3, image_size=(32, 32))
    k_st, k_ms = mix31(3, 0x57), mix31(3, 0x35)
    for p in range(4):
        expected = draw_sub_keys(rng(mix31(k_st, p)), 4)
        for name, value in expected.items():
            assert np.array_equal(getattr(cipher, name)[p], value), name
    assert np.array_equal(cipher.block_perm, np.argsort(rng(k_ms).permutation(4)))
    v1 = CFEv1Cipher.from_seed(3, image_size=(32, 32))
    assert all(np.array_equal(getattr(v1, n), v) for n, v in draw_sub_keys(rng(k_st), 4).items())


def test_geometry_code_matches_rotation_then_flip() -> None:
    block = np.arange(9).reshape(3, 3)
    table = dihedral_source(3)
    for rotation in range(4):
        for flip in range(4):
            turned = np.rot90(block, k=rotation)
            flipped = {0: turned, 1: turned[:, ::-1], 2: turned[::-1, :], 3: turned[::-1, ::-1]}[flip]
            g = int(geometry_code(np.array(rotation), np.array(flip)))
            assert np.array_equal(block.reshape(-1)[table[g]].reshape(3, 3), flipped)


def test_hand_computed_two_sub_blocks() -> None:
    """One 2 x 2 main block of four 1 x 1 sub-blocks, V1."""
    x = torch.arange(12, dtype=torch.uint8).view(1, 3, 2, 2)  # pixel k has (k, 4 + k, 8 + k)
    key = {
        "rotation": [0, 1, 2, 3], "flip": [0, 1, 2, 3], "negpos": [1, 0, 0, 0],
        "channel_perm": [[2, 1, 0], [0, 1, 2], [0, 1, 2], [1, 2, 0]], "sub_perm": [3, 0, 1, 2], "block_perm": [0],
    }
    y = CFEv1Cipher(2, **key, sub_block_size=1).encrypt(x)[0]
    # slot 0 <- sub-block 3 (pixel 3 = (3, 7, 11)), channels (1, 2, 0) -> (7, 11, 3)
    assert y[:, 0, 0].tolist() == [7, 11, 3]
    # slot 1 <- sub-block 0 (pixel 0 = (0, 4, 8)), negated (255, 251, 247), channels (2, 1, 0) -> (247, 251, 255)
    assert y[:, 0, 1].tolist() == [247, 251, 255]
    # slots 2, 3 <- pixels 1, 2 unchanged (geometry does nothing to 1 x 1 sub-blocks)
    assert y[:, 1, 0].tolist() == [1, 5, 9] and y[:, 1, 1].tolist() == [2, 6, 10]


@pytest.mark.parametrize("size", [(32, 32), (224, 224)])
@pytest.mark.parametrize("version", [1, 2])
def test_key_space_closed_forms(size, version: int) -> None:
    cipher = CLASSES[version].from_seed(0, image_size=size)
    n, s = (size[0] // 16) * (size[1] // 16), 4
    sets = 1 if version == 1 else n
    nominal = math.factorial(n) * (math.factorial(s) * 192**s) ** sets
    effective = math.factorial(n) * (math.factorial(s) * 96**s) ** sets
    assert cipher.key_space() == nominal and cipher.effective_key_space() == effective
    assert cipher.key_space_log2() == pytest.approx(log2_factorial(n) + sets * (log2_factorial(s) + s * math.log2(192)), rel=1e-12)
    assert cipher.effective_key_space_log2() == pytest.approx(math.log2(effective), rel=1e-12)
    assert cipher.seeded_key_space_bound() == 2**62


def test_key_space_values() -> None:
    assert CFEv1Cipher.from_seed(0, (32, 32)).key_space_log2() == pytest.approx(39.51, abs=0.01)
    assert CFEv1Cipher.from_seed(0, (32, 32)).effective_key_space_log2() == pytest.approx(35.51, abs=0.01)
    assert CFEv2Cipher.from_seed(0, (32, 32)).key_space_log2() == pytest.approx(144.28, abs=0.01)
    assert CFEv2Cipher.from_seed(0, (224, 224)).effective_key_space_log2() == pytest.approx(7276.11, abs=0.01)


def test_effective_counts_each_geometry_twice() -> None:
    """(rotation r, flip 3) is the same map as (r + 2, flip 0): two keys, one transform."""
    base = CFEv1Cipher.from_seed(4, image_size=(32, 32))
    rotation, flip = base.rotation.copy(), base.flip.copy()
    rotation[0], flip[0] = 1, 3
    a = base.rebuild(rotation=rotation, flip=flip)
    rotation[0], flip[0] = 3, 0
    b = base.rebuild(rotation=rotation, flip=flip)
    x = _images(2, (32, 32))
    assert torch.equal(a.encrypt(x), b.encrypt(x))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda k: CFEv1Cipher(16, **{**k, "rotation": [0, 1, 2, 4]}), "rotation"),
        (lambda k: CFEv1Cipher(16, **{**k, "flip": [0, 1, 2]}), "flip"),
        (lambda k: CFEv1Cipher(16, **{**k, "negpos": [0, 1, 2, 0]}), "negpos"),
        (lambda k: CFEv1Cipher(16, **{**k, "channel_perm": [[0, 1, 2]] * 3 + [[0, 0, 2]]}), "channel_perm"),
        (lambda k: CFEv1Cipher(16, **{**k, "sub_perm": [0, 1, 1, 2]}), "sub_perm"),
        (lambda k: CFEv1Cipher(16, **{**k, "block_perm": [0, 1, 2, 2]}), "block_perm"),
        (lambda k: CFEv1Cipher(16, **k, sub_block_size=5), "sub_block_size"),
        (lambda k: CFEv1Cipher(15, **k), "even"),
        (lambda k: CFEv2Cipher(16, **k), "rotation"),
        (lambda k: CFEv1Cipher.from_seed(0, (32, 24)), "divisible"),
        (lambda k: CFEv1Cipher.from_seed(0, (32, 32), version=2), "version"),
        (lambda k: CFEv1Cipher.from_seed(2**64, (32, 32)), "seed"),
    ],
)
def test_validation_errors(build, match: str) -> None:
    key = CFEv1Cipher.from_seed(0, (32, 32)).key()
    with pytest.raises(ValueError, match=match):
        build(key)


def test_v2_rows_must_match_the_main_blocks() -> None:
    key = CFEv2Cipher.from_seed(0, (32, 32)).key()
    with pytest.raises(ValueError, match="block_perm"):
        CFEv2Cipher(16, **{**key, "negpos": key["negpos"][:3]})
    cipher = CFEv2Cipher(16, **key)
    with pytest.raises(ValueError, match="block_perm"):
        cipher.encrypt(_images(1, (32, 48)))
    with pytest.raises(ValueError, match="divisible"):
        cipher.encrypt(_images(1, (32, 40)))


@pytest.mark.parametrize("name", ["cfe_v1", "cfe_v2", "cfe"])
def test_seeded_determinism_and_batch_equals_per_image(name: str) -> None:
    x = _images(4, (32, 32), seed=6)
    a, b = create_cipher(name, (32, 32), seed=8), create_cipher(name, (32, 32), seed=8)
    whole = a.encrypt(x)
    assert torch.equal(whole, b.encrypt(x))
    assert torch.equal(whole, torch.cat([a.encrypt(x[i : i + 1]) for i in range(4)]))
    assert torch.equal(a.decrypt(whole), x)
    assert not torch.equal(whole, create_cipher(name, (32, 32), seed=9).encrypt(x))


def test_names_and_options() -> None:
    assert ciphers.get("cfe") is CFEv2Cipher
    cipher = create_cipher("cfe_v1", (32, 32), block_size=8, sub_block_size=2)
    assert (cipher.block_size, cipher.sub_block_size, cipher.n_blocks, cipher.n_sub) == (8, 2, 16, 16)
    x = _images(2, (32, 32))
    assert torch.equal(cipher.decrypt(cipher.encrypt(x)), x)
    assert "sub_block_size" in repr(cipher)


def test_v1_repeats_the_within_block_transform() -> None:
    """V1: two main blocks with the same content (before scrambling) encrypt to the same content."""
    cipher = CFEv1Cipher.from_seed(1, (16, 32))
    tile = _images(1, (16, 16))
    x = torch.cat([tile, tile], dim=3)
    y = cipher.encrypt(x)
    assert torch.equal(y[..., :16], y[..., 16:])
    v2 = CFEv2Cipher.from_seed(1, (16, 32)).encrypt(x)
    assert not torch.equal(v2[..., :16], v2[..., 16:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["cfe_v1", "cfe_v2"])
def test_cuda_equals_cpu(name: str) -> None:
    cipher = create_cipher(name, (224, 224), seed=1)
    x = _images(2, (224, 224))
    assert torch.equal(cipher.encrypt(x.cuda()).cpu(), cipher.encrypt(x))
    assert torch.equal(cipher.decrypt(cipher.encrypt(x.cuda())).cpu(), x)


# -- the keyed ViT (KDDA) -----------------------------------------------------------------------
def _vit(block: int, size: tuple[int, int], seed: int = 0, **variant: object):
    """A random two-layer timm ViT, scaled so its logits depend strongly on the input."""
    from timm.models.vision_transformer import VisionTransformer

    from harness.classifiers.base import ImageClassifier, seeded

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


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "block, sub, size, variant",
    [(16, 8, (32, 32), {}), (8, 4, (16, 24), {"class_token": False, "global_pool": "avg"}), (8, 2, (16, 16), {"reg_tokens": 1})],
)
def test_keyed_vit_logits_on_ciphertexts_equal_plain_logits(version, block, sub, size, variant) -> None:
    from harness.classifiers.vit_cfe_keyed import cfe_keyed_vit

    model = _vit(block, size, **variant).to(torch.float64)
    cipher = CLASSES[version].from_seed(5, image_size=size, block_size=block, sub_block_size=sub)
    x = _images(3, size)
    keyed = cfe_keyed_vit(model, cipher)
    with torch.no_grad():
        plain, on_ciphertexts = model(x), keyed(cipher.encrypt(x))
        untransformed = model(cipher.encrypt(x))
    assert (on_ciphertexts - plain).abs().max() < 1e-10
    assert (untransformed - plain).abs().max() > 1e-3, "the control (no transformation) must differ"


def test_keyed_vit_v1_keeps_the_architecture_and_v2_uses_per_position_kernels() -> None:
    from harness.classifiers.vit_cfe_keyed import PerPositionPatchEmbed, cfe_keyed_vit

    model = _vit(16, (32, 32))
    v1 = cfe_keyed_vit(model, CFEv1Cipher.from_seed(1, (32, 32)))
    assert isinstance(v1.net.patch_embed.proj, torch.nn.Conv2d)
    v2 = cfe_keyed_vit(model, CFEv2Cipher.from_seed(1, (32, 32)))
    assert isinstance(v2.net.patch_embed.proj, PerPositionPatchEmbed)
    assert isinstance(model.net.patch_embed.proj, torch.nn.Conv2d), "the input model must not change"
    x = _images(2, (32, 32))
    with torch.no_grad():
        assert (v2(CFEv2Cipher.from_seed(1, (32, 32)).encrypt(x)) - model(x)).abs().max() < 1e-4


def test_keyed_classifier_is_registered_and_checks_its_cipher() -> None:
    from ciphers.proposed import ProposedCipher
    from harness.classifiers.vit_cfe_keyed import VitCFEKeyedClassifier, cfe_keyed_vit
    from harness.registry import classifiers

    assert classifiers.get("vit_cfe_keyed") is VitCFEKeyedClassifier and VitCFEKeyedClassifier.plain_base == "vit"
    cipher = create_cipher("cfe", (32, 32))
    assert VitCFEKeyedClassifier.for_cipher(cipher, {})["patch_size"] == 16
    with pytest.raises(ValueError, match="patch_size"):
        VitCFEKeyedClassifier.for_cipher(cipher, {"patch_size": 8})
    with pytest.raises(ValueError, match="only with the 'cfe_v1' or 'cfe_v2' cipher, got 'proposed'"):
        VitCFEKeyedClassifier.for_cipher(ProposedCipher.from_seed(0, (32, 32), 4), {})
    with pytest.raises(ValueError, match="patch size"):
        cfe_keyed_vit(_vit(8, (32, 32)), cipher)
    with pytest.raises(ValueError, match="main blocks"):
        cfe_keyed_vit(_vit(16, (32, 48)), cipher)


def _piece_map(cipher, size: tuple[int, int]) -> tuple[PieceMap, tuple[int, int, int]]:
    shape = (3, *size)
    return pieces_of_map(cipher.index_map(*shape), cipher.xor_mask(*shape), shape, cipher.piece_size), shape


@pytest.mark.parametrize("version", [1, 2])
def test_a_cfe_map_is_an_etc_map_of_sub_blocks_whose_key_reads_back(version: int) -> None:
    """The pieces are the sub-blocks; ``key_from_pieces`` gives the key back, each rotation/flip code as
    the equal one of its geometry; main-block structure puts back two pieces swapped across main
    blocks; V1's shared sub-keys outvote one piece with a wrong negation, V2 keeps it (its own key)."""
    cipher = CLASSES[version].from_seed(4, (48, 32), sub_block_size=4)  # 3 x 2 main blocks of 16 sub-blocks
    assert cipher.piece_size == 4 and cipher.traits.within_block == "dihedral"
    pieces, shape = _piece_map(cipher, (48, 32))
    truth = cipher.key()

    def same_transform(key: dict[str, np.ndarray]) -> bool:
        built = cipher.rebuild(**key)
        return np.array_equal(built.index_map(*shape), cipher.index_map(*shape)) and np.array_equal(
            built.xor_mask(*shape), cipher.xor_mask(*shape))

    key = cipher.key_from_pieces(pieces)
    assert same_transform(key)
    assert np.array_equal(geometry_code(key["rotation"], key["flip"]), geometry_code(truth["rotation"], truth["flip"]))
    assert all(np.array_equal(key[k], truth[k]) for k in ("negpos", "channel_perm", "sub_perm", "block_perm"))
    source = pieces.source.copy()
    source[[0, 95]] = source[[95, 0]]  # first piece of the first and last of the last main block
    assert same_transform(cipher.key_from_pieces(dataclasses.replace(pieces, source=source)))
    wrong = dataclasses.replace(pieces, negpos=pieces.negpos ^ (np.arange(96) == 37))
    flipped = cipher.rebuild(**cipher.key_from_pieces(wrong)).xor_mask(*shape) != cipher.xor_mask(*shape)
    assert flipped.sum() == (0 if version == 1 else 3 * 4 * 4)


def test_key_from_pieces_rejects_another_grid() -> None:
    cipher = CFEv2Cipher.from_seed(4, (48, 32), sub_block_size=4)
    other = CFEv2Cipher.from_seed(4, (32, 32), sub_block_size=4)
    with pytest.raises(ValueError, match="6 main blocks of 16 sub-blocks"):
        cipher.key_from_pieces(_piece_map(other, (32, 32))[0])


@pytest.mark.parametrize("name", ["cfe_v1", "cfe_v2"])
def test_dihedral_traits_keep_kpa_on_its_generic_byte_map_solver(name: str) -> None:
    """kpa's EtC solver reads a ``geometry`` entry CFE's key lacks: kpa falls back to the gather + XOR
    solver and still restores exactly from a few pairs."""
    family = CipherFamily(name, (32, 32), 16)
    assert choose_solver(family).__name__ == "_generic"
    victim, images = family.draw(5), _images(6, (32, 32), seed=2)
    attack = attacks.get("kpa")()
    attack.fit(images[:2], family, AttackConfig(), known_pairs=(images[:4], victim.encrypt(images[:4])))
    assert torch.equal(attack.restore(victim.encrypt(images[4:])), images[4:])
