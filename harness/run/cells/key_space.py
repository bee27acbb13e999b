"""The key-space cell: a cipher's nominal and effective key space and its example images (plain,
and encrypted under an illustration key, never the victim's)."""

from __future__ import annotations

import torch

from harness.data import ImageDataset
from harness.metrics import psnr, ssim
from harness.run.cells.context import CellContext
from harness.run.cells.output import CellOutput
from harness.run.plan import Cell
from harness.run.security_rows import mean_row
from harness.transport import Received


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
    # the figure's ciphertexts: the victim's key would publish known-plaintext pairs
    encrypted = ctx.illustration_cipher(cell.cipher).encrypt(plain, torch.arange(count))
    scores = ssim(encrypted, plain).numpy() if encrypted.shape == plain.shape else None
    if isinstance(cipher, Received):
        rows.append(_channel_psnr(base, cipher, test))
    return CellOutput(rows, examples=[("plain", plain.numpy(), None), ("encrypted", encrypted.numpy(), scores)])


#: test images the PSNR of a lossy channel is measured on
CHANNEL_IMAGES = 200


def _channel_psnr(base: dict[str, object], cipher: Received, test: ImageDataset) -> dict[str, object]:
    """Mean PSNR of decrypt(what arrived) against the plain image: what the channel costs the user."""
    ids = torch.arange(min(CHANNEL_IMAGES, len(test)))
    plain = test.batch(ids)
    decrypted = cipher.decrypt(cipher.encrypt(plain, ids), ids)
    note = f"PSNR (dB) of decrypt(received) vs plain through {cipher.channel.describe()}"
    return mean_row({**base, "note": note}, "transport_psnr", psnr(decrypted, plain))
