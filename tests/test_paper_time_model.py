"""The time model of the paper grid (benchmarks/paper_time_model.py) times the grid the paper
preset plans: every network paired with a default cipher, built for that cipher (a ViT's patch is
the cipher's block), and none of the newer ciphers that run only when named.  The whole model
(``--tiny``, a few minutes on a CPU) runs in benchmarks/gpu_checks.sh; here, its accuracy half."""

from __future__ import annotations

import torch

from benchmarks.paper_time_model import accuracy_times, paper_config
from harness.registry import classifiers
from harness.run.plan import default_ciphers


def test_the_accuracy_half_times_every_trained_network_of_the_planned_paper_grid() -> None:
    torch.set_num_threads(1)
    config = paper_config(tiny=True)
    cells = accuracy_times(config, torch.device("cpu"), tiny=True)
    planned = set(default_ciphers(config))
    expected = {(cipher, name) for cipher, paired in config["pairings"].items() if cipher in planned
                for name in paired if getattr(classifiers.get(name), "plain_base", None) is None}
    assert {(c.cipher, c.component) for c in cells} == expected
    assert not {c.cipher for c in cells} & {"ak_shuffle", "vit_kiya", "cfe_v1"}  # run only when named
    assert {c.dataset for c in cells} == {"cifar10", "cifar100"} and all(c.seconds > 0 for c in cells)
