"""The contract every registered classifier must pass; a new classifier is tested the moment it registers.

Each classifier is built with its ``small_options`` on 16 x 16 images with 4 x 4 blocks.  Third-party
authors can run this file against their plugin: it only uses the registry.
"""

from __future__ import annotations

import pytest
import torch

from harness.classifiers.base import Classifier
from harness.registry import classifiers

pytestmark = pytest.mark.usefixtures("single_thread")

NAMES = classifiers.names()
SIZE = (16, 16)
BLOCK = 4
CLASSES = 3


@pytest.fixture(params=NAMES, scope="module")
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def _build(name: str, seed: int = 0, **extra: object) -> torch.nn.Module:
    cls = classifiers.get(name)
    return cls.build(num_classes=CLASSES, image_size=SIZE, block_size=BLOCK, seed=seed, **{**cls.small_options, **extra})


def _images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *SIZE), dtype=torch.uint8, generator=generator)


def test_registry_holds_the_five_classifiers() -> None:
    assert {"vit", "resnet18", "shakedrop", "adaptation", "vit_keyed"} <= set(NAMES)
    assert all(issubclass(classifiers.get(n), Classifier) for n in NAMES)


def test_forward_gives_float_logits_per_class(name: str, device: torch.device) -> None:
    model = _build(name).to(device).eval()
    logits = model(_images().to(device))
    assert logits.shape == (4, CLASSES) and logits.dtype == torch.float32 and logits.device.type == device.type
    assert torch.isfinite(logits).all()
    assert logits.std(dim=0).max() > 0, "different images must give different logits"


def test_uint8_and_unit_float_inputs_agree(name: str) -> None:
    model = _build(name).eval()
    images = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(images), model(images.float() / 255), rtol=0, atol=1e-5)


def test_backward_reaches_every_parameter(name: str, device: torch.device) -> None:
    model = _build(name).to(device).train()
    loss = torch.nn.functional.cross_entropy(model(_images().to(device)), torch.tensor([0, 1, 2, 0], device=device))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_build_is_deterministic_given_the_seed_and_leaves_global_rng_alone(name: str) -> None:
    state = torch.get_rng_state()
    first, again, other = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
    assert torch.equal(state, torch.get_rng_state()), "build must not advance torch's global generator"
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    images = _images()
    with torch.no_grad():
        assert torch.equal(first.eval()(images), again.eval()(images))


def test_none_options_are_ignored(name: str) -> None:
    cls = classifiers.get(name)
    unset = [o for o in sorted(cls.options) if o not in cls.small_options]
    if not unset:
        pytest.skip("every option is set by small_options")
    option = unset[0]
    plain, with_none = _build(name), _build(name, **{option: None})
    assert all(torch.equal(v, with_none.state_dict()[k]) for k, v in plain.state_dict().items())


def test_unknown_option_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="no_such_option"):
        _build(name, no_such_option=1)


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"num_classes": 0}, "num_classes"), ({"image_size": (18, 16)}, "image_size"), ({"block_size": 0}, "block_size")],
)
def test_bad_arguments_are_clear_errors(name: str, kwargs: dict, argument: str) -> None:
    cls = classifiers.get(name)
    arguments = {"num_classes": CLASSES, "image_size": SIZE, "block_size": BLOCK, **kwargs}
    with pytest.raises(ValueError, match=argument):
        cls.build(**arguments, **cls.small_options)


def test_resolved_options_are_complete_and_stable(name: str) -> None:
    cls = classifiers.get(name)
    resolved = cls.resolve_options(image_size=SIZE, block_size=BLOCK, **cls.small_options)
    assert set(cls.options) <= set(resolved)
    assert resolved == cls.resolve_options(image_size=SIZE, block_size=BLOCK, **resolved)
