"""Semantic-alignment metrics of a sentence encoder against its teacher, with the reference baselines that say what
the figures mean: predicting the mean training target, and chance retrieval."""

import torch
from torch.nn import functional as F


def retrieval_recall(predictions: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Audio -> text retrieval among the N utterances: for each prediction `(N, D)`, rank all targets `(N, D)` by cosine
    similarity; R@k is the share whose own target is among the top k."""
    similarity = F.normalize(predictions.float(), dim=-1) @ F.normalize(targets.float(), dim=-1).T
    own = similarity.diagonal().unsqueeze(1)
    rank = (similarity > own).sum(dim=1)  # 0 = own target ranked first
    return {f"r@{k}": float((rank < k).float().mean()) for k in ks}


def alignment_metrics(predictions: torch.Tensor, targets: torch.Tensor, mean_target: torch.Tensor) -> dict[str, float]:
    """L1, cosine similarity and retrieval of `predictions` `(N, D)` against `targets` `(N, D)`, next to the
    predict-the-mean-target baseline (`mean_target` `(D,)`, from the training set) and chance retrieval."""
    predictions, targets = predictions.float(), targets.float()
    baseline = mean_target.float().expand_as(targets)
    count = len(targets)
    metrics = {
        "l1": float(F.l1_loss(predictions, targets)),
        "cosine": float(F.cosine_similarity(predictions, targets, dim=-1).mean()),
        **retrieval_recall(predictions, targets),
        "mean_target_l1": float(F.l1_loss(baseline, targets)),
        "mean_target_cosine": float(F.cosine_similarity(baseline, targets, dim=-1).mean()),
        "chance_r@1": 1.0 / count,
        "chance_r@5": min(5, count) / count,
        "num_utterances": count,
    }
    return metrics
