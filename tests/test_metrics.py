"""LVE, MVE and FDD on hand-computed examples, both region-file styles, and the shipped `evaluate` modules."""

import numpy as np
import pytest

from modeling_wav2sem.metrics import (
    lip_vertex_error,
    load_metric,
    mean_vertex_error,
    read_region_file,
    upper_face_dynamics_deviation,
)

# Three vertices, all at the origin in the reference. Sequence A: 2 frames; sequence B: 1 frame.
REF_A = np.zeros((2, 9))
PRED_A = np.array([
    [3, 4, 0, 1, 0, 0, 0, 0, 0],  # frame 0: vertex 0 off by (3,4,0) -> |e|=5, |e|^2=25; vertex 1 |e|=1
    [0, 0, 0, 0, 2, 0, 0, 0, 0],  # frame 1: vertex 1 off by 2 -> |e|=2, |e|^2=4
], dtype=float)
REF_B = np.zeros((1, 9))
PRED_B = np.array([[0, 0, 0, 0, 0, 0, 0, 0, 6]], dtype=float)  # vertex 2 off by 6
LIPS = [0, 1]


def test_lve_is_the_pooled_mean_of_per_frame_max_squared_errors():
    # Lips = vertices 0 and 1. Frame maxima of squared errors: A0 max(25, 1) = 25, A1 max(0, 4) = 4, B0 max(0, 0) = 0.
    # Pooled over the 3 frames: (25 + 4 + 0) / 3; the mean of per-sequence means would be (14.5 + 0) / 2 instead.
    assert lip_vertex_error([PRED_A, PRED_B], [REF_A, REF_B], LIPS) == pytest.approx(29 / 3)
    assert lip_vertex_error([PRED_A, PRED_B], [REF_A, REF_B], LIPS, scale=1e-5) == pytest.approx(29 / 3 / 1e-5)


def test_mve_is_the_mean_unsquared_error_over_frames_and_vertices():
    # Errors: A0 (5, 1, 0), A1 (0, 2, 0), B0 (0, 0, 6) -> 14 over 9 vertex-frames.
    assert mean_vertex_error([PRED_A, PRED_B], [REF_A, REF_B]) == pytest.approx(14 / 9)


def test_predictions_are_truncated_to_the_reference():
    longer = np.concatenate([PRED_A, np.full((3, 9), 100.0)])
    assert mean_vertex_error([longer], [REF_A]) == mean_vertex_error([PRED_A], [REF_A])
    with pytest.raises(ValueError, match="fewer than its reference"):
        mean_vertex_error([PRED_A[:1]], [REF_A])
    with pytest.raises(ValueError, match="vertices"):
        mean_vertex_error([np.zeros((2, 6))], [REF_A])


def test_fdd_is_signed_reference_minus_prediction_dynamics():
    template = np.zeros((3, 3))
    upper = [2]
    # Reference: vertex 2 moves 0 then 2 -> squared motion norms (0, 4), population std 2.
    reference = np.zeros((2, 9))
    reference[1, 8] = 2.0
    # Prediction: vertex 2 moves 1 then 1 -> (1, 1), std 0. FDD = 2 - 0 = 2 (prediction too static: positive).
    prediction = np.zeros((2, 9))
    prediction[:, 8] = 1.0
    assert upper_face_dynamics_deviation([prediction], [reference], [template], upper) == pytest.approx(2.0)
    # Swapped roles: the prediction moves more -> negative; averaged over sequences -> (2 - 2) / 2 = 0.
    assert upper_face_dynamics_deviation([reference], [prediction], [template], upper) == pytest.approx(-2.0)
    assert upper_face_dynamics_deviation(
        [prediction, reference], [reference, prediction], [template, template], upper
    ) == pytest.approx(0.0)


@pytest.mark.parametrize("text", ["1, 5, 7, 12", "1,5,7,12", "1,5,\n7, 12\n"])
def test_region_files_in_both_separator_styles(tmp_path, text):
    path = tmp_path / "lips.txt"
    path.write_text(text)
    assert read_region_file(path).tolist() == [1, 5, 7, 12]


def test_region_file_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1, two, 3")
    with pytest.raises(ValueError, match="integer"):
        read_region_file(path)
    with pytest.raises(ValueError, match="Region indices"):
        lip_vertex_error([PRED_A], [REF_A], [0, 3])


def test_shipped_evaluate_modules_match_the_functions():
    preds, refs = [PRED_A.tolist(), PRED_B.tolist()], [REF_A.tolist(), REF_B.tolist()]
    assert load_metric("lve").compute(predictions=preds, references=refs, lip_indices=LIPS)["lve"] == pytest.approx(29 / 3)
    assert load_metric("mve").compute(predictions=preds, references=refs)["mve"] == pytest.approx(14 / 9)
    fdd = load_metric("fdd").compute(
        predictions=preds, references=refs, templates=[np.zeros((3, 3))] * 2, upper_indices=[2]
    )["fdd"]
    assert fdd == pytest.approx(upper_face_dynamics_deviation([PRED_A, PRED_B], [REF_A, REF_B], [np.zeros((3, 3))] * 2, [2]))
    with pytest.raises(ValueError, match="Unknown metric"):
        load_metric("bleu")


def test_sample_dataset_regions_parse():
    from pathlib import Path

    regions = Path(__file__).resolve().parent.parent / "training" / "sample_data" / "vocaset" / "regions"
    assert len(read_region_file(regions / "lip_vertices.txt")) == 56
    assert len(read_region_file(regions / "upper_face_vertices.txt")) == 103
