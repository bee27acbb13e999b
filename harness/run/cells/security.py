"""The security cell: resolve an attack's settings and the cipher family from the configuration
(and, for a model-holder attack, the provider's models: :mod:`harness.run.cells.provider`),
run the attack (:func:`harness.run.security.run_security_cell`) and store its rows, per-image
scores and example restorations (:func:`harness.run.security.security_rows`)."""

from __future__ import annotations

import numpy as np

from attacks.base import AttackConfig, CipherFamily, ProviderModels
from ciphers.base import Cipher
from harness.data import LABELLED_DATASETS
from harness.lazy import LazyImages
from harness.keys import derive_seed
from harness.registry import attacks
from harness.restorations import Restorations
from harness.run.cells.context import CellContext
from harness.run.cells.output import CellOutput
from harness.run.cells.provider import provider_models
from harness.run.plan import Cell, cipher_options
from harness.run.security import AttackNotApplicable, SecurityResult, run_security_cell
from harness.run.security_rows import security_rows


def security_cell(cell: Cell, ctx: CellContext) -> CellOutput:
    cipher = ctx.victim_cipher(cell.cipher)
    size = ctx.image_size(cell.cipher)
    options = cipher_options(ctx.config, cell.cipher)
    block_size = options.pop("block_size", None)
    family = CipherFamily(name=cell.cipher, image_size=size, block_size=cipher.block_size if block_size is None else block_size, options=options)
    attack_options = dict(ctx.config["attacks"].get(cell.attack) or {})
    attack_options.setdefault("seed", derive_seed(ctx.config["seed"], "attack", cell.attack))
    attack_options["known_pairs"] = ctx.config["known_pairs"]
    base = ctx.row_base(cell)
    # lazy splits: CIFAR stays at 32 x 32 and is resized a chunk at a time (bounded memory)
    victim = ctx.dataset(cell.dataset, "test", size).lazy(ctx.device)
    attacker = ctx.dataset(cell.dataset, "attacker", size).lazy(ctx.device)
    # the provider holds the encrypted training set too: attacks on victim ciphertexts pool it
    pool = ctx.dataset(cell.dataset, "train", size).lazy(ctx.device) if attacks.get(cell.attack).uses_victim_ciphertexts else None
    count = int(ctx.config["examples"])
    try:
        models = _models(cell, ctx, family)
        result = _run(cell, ctx, family, cipher, victim, attacker, pool, AttackConfig(**attack_options), count, models)
    except AttackNotApplicable as reason:  # the attack's own word, checked once, inside the run
        return CellOutput([{**base, "status": "n/a", "metric": "ssim", "note": str(reason)}])
    rows, per_image, examples = security_rows(base, result, count)
    logged = None
    if ctx.log_restorations:  # every evaluated image, in order: image i is the test split's image i
        restored = result.restored.cpu().numpy()
        logged = Restorations(restored, np.arange(len(restored)), attacks.get(cell.attack).threat_model, per_image)
    return CellOutput(rows, per_image=per_image, examples=examples, restorations=logged)


def _models(cell: Cell, ctx: CellContext, family: CipherFamily) -> ProviderModels | None:
    """The provider's models a model-holder attack reads (None for the others); a family the attack
    does not apply to loads nothing (the run says why)."""
    attack_cls = attacks.get(cell.attack)
    if not attack_cls.reads_models or attack_cls.applies_to(family) is not None:
        return None
    if cell.dataset not in LABELLED_DATASETS:
        raise AttackNotApplicable(f"the {cell.dataset} dataset has no labels: the provider trains no model on it, so there are no weights to read")
    return provider_models(cell, ctx, attack_cls.reads_models)


def _run(cell: Cell, ctx: CellContext, family: CipherFamily, cipher: Cipher, victim: LazyImages, attacker: LazyImages,
         pool: LazyImages | None, config: AttackConfig, count: int, models: ProviderModels | None) -> SecurityResult:
    return run_security_cell(
        cell.attack,
        family,
        cipher,
        victim,
        attacker,
        config,
        cache_dir=ctx.cache_dir,
        pool_images=pool,
        ladder=tuple(int(c) for c in ctx.config["ciphertext_ladder"]),
        device=ctx.device,
        refresh_cache=ctx.refresh_cache,
        progress=ctx.cell_progress(cell),
        keep_restored=None if ctx.log_restorations else count,
        models=models,
    )
