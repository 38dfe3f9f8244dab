"""Pretraining objectives: L1 to the teacher's sentence vector (the paper), optionally on standardised targets, plus
an optional in-batch contrastive term (InfoNCE, named as future work in the paper)."""

import torch
from torch.nn import functional as F


def target_statistics(targets: torch.Tensor, min_std: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation `(D,)` of the training targets `(N, D)` (std floored at `min_std`)."""
    targets = targets.double()
    return targets.mean(0).float(), targets.std(0, unbiased=False).clamp(min=min_std).float()


def infonce_loss(predictions: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE between predictions `(B, D)` and their targets `(B, D)` (cosine similarities)."""
    logits = F.normalize(predictions.float(), dim=-1) @ F.normalize(targets.float(), dim=-1).T / temperature
    labels = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def semantic_loss(
    standardized_embeds: torch.Tensor,
    targets: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    infonce_weight: float = 0.0,
    temperature: float = 0.07,
) -> dict[str, torch.Tensor]:
    """The training loss for one batch.

    Args:
        standardized_embeds: `(B, D)` the model's output before its folded-in de-standardisation.
        targets: `(B, D)` teacher vectors in the teacher's space.
        shift, scale: `(D,)` the statistics folded into the model (zeros and ones for plain L1 in teacher space).
        infonce_weight: weight of the contrastive term (0 disables it).

    Returns:
        `{"loss", "l1_standardized"}` and `"infonce"` when enabled; all scalars. `l1_standardized` is measured in the
        standardised space (the teacher's space only when `shift` and `scale` are the identity), unlike the evaluation's
        `l1`, which is always in the teacher's space.
    """
    standardized_targets = (targets.float() - shift) / scale
    l1 = F.l1_loss(standardized_embeds.float(), standardized_targets)
    losses = {"l1_standardized": l1, "loss": l1}
    if infonce_weight > 0 and len(targets) > 1:
        contrastive = infonce_loss(standardized_embeds, standardized_targets, temperature)
        losses["infonce"] = contrastive
        losses["loss"] = l1 + infonce_weight * contrastive
    return losses
