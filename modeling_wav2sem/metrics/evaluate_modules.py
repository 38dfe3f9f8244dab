"""`evaluate.Metric` classes for LVE, MVE and FDD; the one-line scripts in `lve/`, `mve/`, `fdd/` expose them to
`evaluate.load(<local path>)`, so nothing is fetched from the Hub."""

import datasets
import evaluate

from .functional import lip_vertex_error, mean_vertex_error, upper_face_dynamics_deviation

_SEQUENCES = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
_INPUTS = "predictions, references: per-sequence (T, V*3) vertex arrays in metres (predictions truncated to the references)."


class _VertexMetric(evaluate.Metric):
    """Shared metadata; subclasses set `key`, `description` and `extra_inputs` and implement `_compute`."""

    key = description = extra_inputs = ""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.description,
            citation="",
            inputs_description=f"{_INPUTS} {self.extra_inputs}",
            features=datasets.Features({"predictions": _SEQUENCES, "references": _SEQUENCES}),
        )


class Lve(_VertexMetric):
    key = "lve"
    description = "Lip vertex error: per frame, the max over lip vertices of the squared L2 error; mean over frames."
    extra_inputs = "lip_indices: lip vertex indices. scale: divisor (1e-5 VOCASET, 1e-4 BIWI)."

    def _compute(self, predictions, references, lip_indices, scale=1.0):
        return {"lve": lip_vertex_error(predictions, references, lip_indices, scale=scale)}


class Mve(_VertexMetric):
    key = "mve"
    description = "Mean vertex error: mean over frames and vertices of the L2 error."
    extra_inputs = "scale: divisor."

    def _compute(self, predictions, references, scale=1.0):
        return {"mve": mean_vertex_error(predictions, references, scale=scale)}


class Fdd(_VertexMetric):
    key = "fdd"
    description = "Upper-face dynamics deviation: std over time of squared upper-face motion, reference - prediction."
    extra_inputs = "templates: one (V, 3) template per sequence. upper_indices: upper-face vertex indices. scale: 1e-5."

    def _compute(self, predictions, references, templates, upper_indices, scale=1.0):
        return {"fdd": upper_face_dynamics_deviation(predictions, references, templates, upper_indices, scale=scale)}
