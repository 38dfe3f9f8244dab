"""The MVE metric for `evaluate.load` (defined in modeling_wav2sem.metrics.evaluate_modules)."""

from modeling_wav2sem.metrics.evaluate_modules import Mve  # noqa: F401
