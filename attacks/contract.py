"""The attack contract as checks: one implementation, run by :meth:`attacks.base.Attack.restore` on
every restoration it hands back (so by the runner's security cells and the shipped conformance
suite alike) and by the runner before an attack's cells compute anything (its declarations).

Restorations are checked where they are received rather than by a probe before the grid: a probe
would have to fit the attack, and a learned attack's fit is the cost of its whole cell.  Each
check raises :class:`ciphers.contract.ContractViolation` naming the attack and what broke.
"""

from __future__ import annotations

from typing import Any

import torch

from ciphers.contract import ContractViolation

THREAT_MODELS = ("ciphertext-only", "known-plaintext", "model-holder")


def check_restored(attack: str, restored: object, expected: tuple[int, ...]) -> torch.Tensor:
    """``restored`` if it is uint8 images of the ``expected`` (plain) shape, else ContractViolation."""
    if not isinstance(restored, torch.Tensor):
        raise ContractViolation("attack", attack, f"restore returned {type(restored).__name__}, expected a torch.uint8 tensor")
    if restored.dtype != torch.uint8:
        finite = "" if not restored.is_floating_point() or bool(torch.isfinite(restored).all()) else " with NaN or infinite values"
        raise ContractViolation("attack", attack, f"restore returned {restored.dtype}{finite}, expected torch.uint8 images (0..255)")
    if tuple(restored.shape) != tuple(expected):
        raise ContractViolation("attack", attack, f"restore returned shape {tuple(restored.shape)}, expected {tuple(expected)} "
                                                  "(the plain images' shape)")
    return restored


def check_declarations(cls: type[Any]) -> None:
    """The class attributes reports and cells decide from: a known threat model that agrees with
    ``uses_known_pairs`` and ``reads_models``, and booleans where booleans are declared."""
    name = getattr(cls, "registry_name", cls.__name__)
    if cls.threat_model not in THREAT_MODELS:
        raise ContractViolation("attack", name, f"threat_model is {cls.threat_model!r}, expected one of {THREAT_MODELS}")
    if (cls.threat_model == "known-plaintext") != cls.uses_known_pairs:
        raise ContractViolation("attack", name, f"threat_model {cls.threat_model!r} disagrees with uses_known_pairs = "
                                                f"{cls.uses_known_pairs!r} (known-plaintext attacks, and only they, use known pairs)")
    if (cls.threat_model == "model-holder") != bool(cls.reads_models):
        raise ContractViolation("attack", name, f"threat_model {cls.threat_model!r} disagrees with reads_models = "
                                                f"{cls.reads_models!r} (model-holder attacks, and only they, read the provider's models)")
    for flag in ("learned", "uses_victim_ciphertexts", "uses_known_pairs", "restores_positions", "baseline", "key_recovery",
                 "statistical", "streams"):
        if not isinstance(getattr(cls, flag), bool):
            raise ContractViolation("attack", name, f"{flag} is {getattr(cls, flag)!r}, expected True or False")
