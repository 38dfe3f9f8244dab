"""Lip-sync metrics as the public evaluation code of the downstream models computes them.

Sequences are `(T, V*3)` or `(T, V, 3)` vertex arrays in metres. Predictions are truncated to the ground truth's
length first (a prediction shorter than its ground truth is an error). Errors are pooled over all frames of all
sequences (not averaged per sequence first). Scales: LVE x1e-5 (VOCASET) or x1e-4 (BIWI), FDD x1e-5; these functions
return raw values unless `scale` is given (the reported number is `value / scale`).
"""

from pathlib import Path

import numpy as np


def read_region_file(path: str | Path) -> np.ndarray:
    """Vertex indices from a region file: integers separated by ',' or ', ' (both public styles) and/or whitespace."""
    text = Path(path).read_text().replace(",", " ").split()
    try:
        indices = np.array([int(token) for token in text], dtype=np.int64)
    except ValueError as error:
        raise ValueError(f"{path}: region files hold comma-separated integer vertex indices ({error}).") from None
    if indices.size == 0:
        raise ValueError(f"{path} lists no vertex indices.")
    return indices


def _as_vertices(array, name: str, num_vertices: int | None = None) -> np.ndarray:
    """`(T, V*3)` or `(T, V, 3)` -> `(T, V, 3)` float64."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 2:
        if array.shape[1] % 3:
            raise ValueError(f"{name} has shape {array.shape}: the last axis must be V*3.")
        array = array.reshape(array.shape[0], -1, 3)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name} must be (T, V*3) or (T, V, 3), got {array.shape}.")
    if num_vertices is not None and array.shape[1] != num_vertices:
        raise ValueError(f"{name} has {array.shape[1]} vertices, expected {num_vertices}.")
    return array


def _pairs(predictions, references):
    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need as many predictions as references (got {len(predictions)} and {len(references)}).")
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        reference = _as_vertices(reference, f"reference {i}")
        prediction = _as_vertices(prediction, f"prediction {i}", reference.shape[1])
        if len(prediction) < len(reference):
            raise ValueError(f"Prediction {i} has {len(prediction)} frames, fewer than its reference's {len(reference)}.")
        yield prediction[: len(reference)], reference


def _check_indices(indices, num_vertices: int) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= num_vertices:
        raise ValueError(f"Region indices must lie in [0, {num_vertices}).")
    return indices


def lip_vertex_error(predictions, references, lip_indices, scale: float = 1.0) -> float:
    """LVE: per frame, the maximum over lip vertices of the squared L2 error; mean over all frames (pooled)."""
    per_frame = []
    for prediction, reference in _pairs(predictions, references):
        lips = _check_indices(lip_indices, reference.shape[1])
        squared = ((prediction[:, lips] - reference[:, lips]) ** 2).sum(-1)
        per_frame.append(squared.max(axis=1))
    return float(np.concatenate(per_frame).mean() / scale)


def mean_vertex_error(predictions, references, scale: float = 1.0) -> float:
    """MVE: mean over all frames and vertices (pooled) of the L2 error (not squared)."""
    errors = [np.linalg.norm(p - r, axis=-1).ravel() for p, r in _pairs(predictions, references)]
    return float(np.concatenate(errors).mean() / scale)


def upper_face_dynamics_deviation(predictions, references, templates, upper_indices, scale: float = 1.0) -> float:
    """FDD: per sequence, motion = vertices - template; per upper-face vertex, the standard deviation over time
    (population, ddof=0) of the squared motion norm, averaged over those vertices; FDD = std(reference) -
    std(prediction), signed, averaged over sequences."""
    if len(templates) != len(references):
        raise ValueError(f"Need one template per sequence (got {len(templates)} for {len(references)}).")
    deviations = []
    for (prediction, reference), template in zip(_pairs(predictions, references), templates):
        template = np.asarray(template, dtype=np.float64).reshape(-1, 3)
        if template.shape[0] != reference.shape[1]:
            raise ValueError(f"Template has {template.shape[0]} vertices, sequences {reference.shape[1]}.")
        upper = _check_indices(upper_indices, reference.shape[1])

        def dynamics(sequence):
            motion = ((sequence[:, upper] - template[upper]) ** 2).sum(-1)  # (T, U) squared motion norms
            return motion.std(axis=0).mean()

        deviations.append(dynamics(reference) - dynamics(prediction))
    return float(np.mean(deviations) / scale)
