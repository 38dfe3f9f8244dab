"""The one test protocol and scoring every animation model gets, so the baseline-vs-Wav2Sem rows are comparable.

A test sequence of a speaker seen in training is predicted under that speaker's style; one of an unseen speaker under
every training style (FaceFormer's, CodeTalker's, FaceDiffuser's and LG-LDM's test protocol), or only the first.
LVE and MVE are pooled over every frame of every prediction, FDD is averaged over predictions (CodeTalker's
`cal_metric.py` definitions, in `modeling_wav2sem.metrics`); the diversity of the predictions under different styles
(FaceDiffuser's and LG-LDM's figure) beside them. Models that sample get a seeded generator.
"""

import inspect

import numpy as np
import torch
from tqdm.auto import tqdm

from modeling_wav2sem.metrics import lip_vertex_error, mean_vertex_error, upper_face_dynamics_deviation

from .data import AnimationDataset, Regions


def conditions_for(subject_index: int, num_subjects: int, mode: str) -> list[int]:
    """Styles to predict a sequence with: its own speaker's when seen in training, else every training style (`"all"`)
    or the first (`"first"`)."""
    if subject_index >= 0:
        return [subject_index]
    return list(range(num_subjects)) if mode == "all" else [0]


def repeat_for_conditions(item: dict, conditions: list[int]) -> dict:
    """One item as a batch of `len(conditions)` copies, one per speaking style."""
    count = len(conditions)
    return {
        "input_values": torch.from_numpy(item["input_values"])[None].expand(count, -1),
        "template": torch.from_numpy(item["template"])[None].expand(count, -1),
        "labels": torch.from_numpy(item["labels"])[None].expand(count, -1, -1),
        "subject_index": torch.tensor(conditions),
    }


@torch.no_grad()
def validation_loss(model, dataset: AnimationDataset, device, autocast, mode: str, forward_kwargs: dict) -> float:
    """The model's loss over the split in eval mode, averaged over the styles of `conditions_for` (the dataset's
    training speakers: `dataset.train_subjects`, the model's for its dataset)."""
    was_training = model.training
    model.eval()
    losses = []
    for item in dataset:
        batch = repeat_for_conditions(item, conditions_for(item["subject_index"], len(dataset.train_subjects), mode))
        with autocast():
            output = model(**{k: v.to(device) for k, v in batch.items()}, **forward_kwargs)
        losses.append(float(output.loss))
    model.train(was_training)
    return float(np.mean(losses))


@torch.no_grad()
def predict_test_split(
    model, dataset: AnimationDataset, device, autocast, mode: str, limit: int | None = None, predict_kwargs=None
) -> list[dict]:
    """Predictions for every test sequence and style: dicts with `name`, `subject`, `condition`, `prediction`
    (T, V*3), `reference` and `template`. Each prediction has the reference's frame count. The styles are the
    dataset's training speakers (`dataset.train_subjects`, the model's for its dataset)."""
    model.eval()
    results = []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="test", leave=False):
        item = dataset[index]
        conditions = conditions_for(item["subject_index"], len(dataset.train_subjects), mode)
        batch = repeat_for_conditions(item, conditions)
        with autocast():
            output = model.predict(
                batch["input_values"].to(device),
                batch["template"].to(device),
                subject_index=batch["subject_index"].to(device),
                num_frames=len(item["labels"]),
                **(predict_kwargs or {}),
            )
        for row, condition in enumerate(conditions):
            prediction = output.vertices[row].float().cpu().numpy()
            results.append({
                "name": item["name"],
                "subject": item["subject"],
                "condition": dataset.train_subjects[condition],
                "prediction": prediction,
                "reference": item["labels"][: len(prediction)],
                "template": item["template"],
            })
    return results


def sampling_kwargs(model, seed: int, num_inference_steps: int | None = None) -> dict:
    """`predict`'s `generator` (one `torch.Generator` seeded with `seed`, drawn from prediction after prediction, so a
    run's samples are reproducible and every prediction has noise of its own, as the published test loops) and
    `num_inference_steps`, for the models whose `predict` takes them (the diffusion models). `num_inference_steps` for
    a model that does not sample is a `ValueError`, not silently dropped."""
    parameters = inspect.signature(model.predict).parameters
    kwargs = {"generator": torch.Generator().manual_seed(seed)} if "generator" in parameters else {}
    if num_inference_steps is not None:
        if "num_inference_steps" not in parameters:
            raise ValueError(f"num_inference_steps: {type(model).__name__} does not sample (its predict takes none).")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, not {num_inference_steps}.")
        kwargs["num_inference_steps"] = num_inference_steps
    return kwargs


def prediction_diversity(results: list[dict], scale: float = 1.0) -> float | None:
    """FaceDiffuser's diversity (`compute_objective_metrics.py`): for every test sequence predicted under two or more
    styles, the mean over pairs of predictions of their mean per-vertex L2 distance (over frames and vertices), then
    the mean over those sequences, divided by `scale`; `None` when no sequence has two predictions."""
    by_sequence: dict[str, list[np.ndarray]] = {}
    for r in results:
        by_sequence.setdefault(r["name"], []).append(np.asarray(r["prediction"], dtype=np.float64).reshape(
            len(r["prediction"]), -1, 3))
    per_sequence = []
    for predictions in by_sequence.values():
        if len(predictions) < 2:
            continue
        frames = min(len(p) for p in predictions)
        pairs = [np.linalg.norm(a[:frames] - b[:frames], axis=-1).mean()
                 for i, a in enumerate(predictions) for b in predictions[i + 1:]]
        per_sequence.append(np.mean(pairs))
    return float(np.mean(per_sequence) / scale) if per_sequence else None


def score_predictions(results: list[dict], regions: Regions, lve_scale: float, fdd_scale: float) -> dict:
    """LVE and MVE (pooled over all frames of all predictions), FDD (mean over predictions), in the reported units;
    the diversity over the styles of a sequence (`prediction_diversity`, in MVE's units)."""
    predictions = [r["prediction"] for r in results]
    references = [r["reference"] for r in results]
    if regions.lip is None:
        raise ValueError("LVE needs lip vertex indices: put regions/lip_vertices.txt in the data folder.")
    metrics = {
        "lve": lip_vertex_error(predictions, references, regions.lip, scale=lve_scale),
        "mve": mean_vertex_error(predictions, references, scale=lve_scale),
        "fdd": None,
        "diversity": prediction_diversity(results, scale=lve_scale),
        "num_sequences": len({r["name"] for r in results}),
        "num_predictions": len(results),
        "num_frames": int(sum(len(r["reference"]) for r in results)),
    }
    if regions.upper_face is not None:
        metrics["fdd"] = upper_face_dynamics_deviation(
            predictions, references, [r["template"] for r in results], regions.upper_face, scale=fdd_scale
        )
    return metrics


def sequence_lip_errors(results: list[dict], lip: np.ndarray, vertex_scale: float = 1.0) -> dict:
    """UniTalker's own evaluation (`validate_epoch`): per prediction, LVE = the mean over frames of the maximum over
    lip vertices of the squared L2 error, and LVD = the mean of its square root, both in UniTalker's scaled space
    (vertices times the dataset's `vertex_scale`: BIWI 0.2, so LVE x 0.04), then averaged over predictions (per
    sequence, not pooled over frames as `score_predictions`). Unscaled units (no 1e-5)."""
    lve, lvd = [], []
    for r in results:
        prediction = np.asarray(r["prediction"], dtype=np.float64).reshape(len(r["prediction"]), -1, 3)
        reference = np.asarray(r["reference"], dtype=np.float64).reshape(len(r["reference"]), -1, 3)
        frames = min(len(prediction), len(reference))
        squared = (((prediction[:frames] - reference[:frames]) * vertex_scale) ** 2).sum(-1)[:, lip].max(-1)
        lve.append(squared.mean())
        lvd.append(np.sqrt(squared).mean())
    return {"lve": float(np.mean(lve)), "lvd": float(np.mean(lvd)), "num_predictions": len(results)}
