"""Lip-sync metrics (LVE, MVE, FDD) as plain functions and as `evaluate` modules shipped in the package."""

from pathlib import Path

from .functional import lip_vertex_error, mean_vertex_error, read_region_file, upper_face_dynamics_deviation

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("lve", "mve", "fdd")


def load_metric(name: str):
    """`evaluate.load` of a shipped metric module by name (`lve`, `mve`, `fdd`), from local files, never the Hub."""
    import evaluate

    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; shipped: {', '.join(METRIC_NAMES)}.")
    return evaluate.load(str(METRICS_DIR / name / f"{name}.py"))


__all__ = [
    "METRIC_NAMES",
    "lip_vertex_error",
    "load_metric",
    "mean_vertex_error",
    "read_region_file",
    "upper_face_dynamics_deviation",
]
