"""The key-space cell: a cipher's nominal and effective key space and its example images."""

from __future__ import annotations

import torch

from harness.metrics import ssim
from harness.run.cells.context import CellContext
from harness.run.cells.output import CellOutput
from harness.run.plan import Cell


def key_space_cell(cell: Cell, ctx: CellContext) -> CellOutput:
    cipher = ctx.victim_cipher(cell.cipher)
    base = {**ctx.row_base(cell), "status": "ok"}
    rows = [
        {**base, "metric": "key_space_log2", "value": cipher.key_space_log2()},
        {**base, "metric": "effective_key_space_log2", "value": cipher.effective_key_space_log2()},
        {**base, "metric": "block_size", "value": float(cipher.block_size)},
    ]
    test = ctx.dataset(cell.dataset, "test", ctx.image_size(cell.cipher))
    count = min(int(ctx.config["examples"]), len(test))
    plain = test.batch(torch.arange(count))
    encrypted = cipher.encrypt(plain, torch.arange(count))
    scores = ssim(encrypted, plain).numpy() if encrypted.shape == plain.shape else None
    return CellOutput(rows, examples=[("plain", plain.numpy(), None), ("encrypted", encrypted.numpy(), scores)])
