"""The models a model-holder attack reads (:class:`attacks.base.ProviderModels`), taken from the
accuracy cells that made them: nothing here trains a model the grid would not train anyway (a
model missing from the cache is trained under the accuracy cell's cache entry, which that cell
then reuses).

- ``keyed``: the keyed classifier's model (``vit_keyed``: the plain ``vit`` cell's model,
  transformed with the victim's key);
- ``trained``: the ``vit`` trained on the cipher's ciphertexts (its accuracy cell's model);
- ``start``: the weights that training started from, built without training (the pretrained
  ViT-B/16 in the paper preset, the seeded initialisation in the quick one);
- ``checkpoint``: the public checkpoint: the pretrained weights where the network loads some,
  else (the quick preset trains from scratch) the plain ``vit`` cell's model stands in for it;
- ``plain``: the plain ``vit`` cell's model (trained the same way from ``start``, on plain images).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from attacks.base import ProviderModels
from harness.classifiers.base import ImageClassifier, keyed_classifier
from harness.registry import classifiers
from harness.run.cells.accuracy import classifier_network, train_config
from harness.run.cells.context import CellContext
from harness.run.plan import Cell, accuracy_image_size
from harness.run.security import AttackNotApplicable
from harness.training import build_model


def _net(model: nn.Module) -> nn.Module:
    """The timm network inside a classifier (attacks read timm ViTs)."""
    return (model.net if isinstance(model, ImageClassifier) else model).eval()


def loads_pretrained(options: dict[str, Any]) -> bool:
    """Whether a network built with ``options`` starts from published weights (a public checkpoint)."""
    return bool(options.get("pretrained") or options.get("weights_file"))


def provider_models(cell: Cell, ctx: CellContext, parts: tuple[str, ...]) -> ProviderModels:
    """The ``parts`` of :class:`ProviderModels` for a security cell; :class:`AttackNotApplicable` when
    the cipher has no model transform or its model runs at another size than its security cells."""
    keyed_name = keyed_classifier(cell.cipher)
    if keyed_name is None:
        raise AttackNotApplicable(f"{cell.cipher} has no model transform (no keyed classifier): no model-holder attack applies")
    keyed_cls = classifiers.get(keyed_name)
    base = keyed_cls.plain_base
    size = accuracy_image_size(ctx.config, cell.cipher, base)
    if size != ctx.image_size(cell.cipher):
        raise AttackNotApplicable(f"the provider's {base} runs at {size}, {cell.cipher}'s security cells at {ctx.image_size(cell.cipher)}")
    cipher = ctx.victim_cipher(cell.cipher, size)
    train = ctx.dataset(cell.dataset, "train", size)
    config = train_config(ctx.config, base)

    def network(classifier: str) -> nn.Module:
        return classifier_network(classifier, cipher, train, config, cache_dir=ctx.cache_dir, device=ctx.device,
                                  progress=ctx.cell_progress(cell))[0]

    options = classifiers.get(base).for_cipher(cipher, config.model_options)
    public = loads_pretrained(options)
    found: dict[str, nn.Module] = {}
    if "start" in parts or ("checkpoint" in parts and public):
        found["start"] = build_model(base, train, cipher, options, config.seed)
    if {"keyed", "plain"} & set(parts) or ("checkpoint" in parts and not public):
        found["plain"] = network(keyed_name)  # the plain base's model, the one the keyed classifier transforms
    if "keyed" in parts:
        found["keyed"] = keyed_cls.from_plain(found["plain"], cipher)
    if "trained" in parts:
        found["trained"] = network(base)
    if "checkpoint" in parts:
        found["checkpoint"] = found["start"] if public else found["plain"]
    return ProviderModels(**{part: _net(found[part]) for part in parts})
