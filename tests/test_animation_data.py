"""The animation data side: VOCASET/BIWI readers on the dataset registry, skipped files, collation, the test protocol
and scoring. The runner itself is tested end to end in test_train_animation.py."""

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2FeatureExtractor

from modeling_wav2sem import ANIMATION_DATASETS
from modeling_wav2sem.metrics import lip_vertex_error, mean_vertex_error
from training.animation.data import AnimationDataset, Regions, collate_animation, default_animation_dir
from training.animation.evaluation import conditions_for, score_predictions
from training.animation.render import read_obj_faces

SAMPLE = default_animation_dir()


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def test_vocaset_splits_rates_and_styles():
    counts = {split: len(AnimationDataset(SAMPLE, "vocaset", split)) for split in ("train", "val", "test")}
    assert counts == {"train": 8, "val": 2, "test": 4}
    train, test = AnimationDataset(SAMPLE, "vocaset", "train"), AnimationDataset(SAMPLE, "vocaset", "test")
    item = train[0]
    stored = np.load(train.sequences[0].vertices)
    assert item["labels"].shape == ((len(stored) + 1) // 2, stored.shape[1])  # 60 -> 30 fps, as FaceFormer
    np.testing.assert_array_equal(item["labels"], stored[::2])
    assert item["subject_index"] == train.train_subjects.index(item["subject"])
    assert abs(float(item["input_values"].mean())) < 1e-3 and abs(float(item["input_values"].std()) - 1) < 1e-2
    assert {test[i]["subject_index"] for i in range(len(test))} == {-1}  # unseen test speakers
    assert item["template"].shape == (stored.shape[1],)


def write_biwi(root, sentences=(1, 33, 37), subjects=("F2", "M3"), vertices=12):
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    rng = np.random.default_rng(0)
    templates = {}
    for subject in subjects:
        templates[subject] = rng.normal(size=(vertices, 3))
        for sentence in sentences:
            frames = 10 + sentence % 5
            sf.write(root / "wav" / f"{subject}_e{sentence:02d}.wav", rng.normal(size=frames * 640) * 0.1, 16000)
            np.save(root / "vertices_npy" / f"{subject}_e{sentence:02d}.npy", rng.normal(size=(frames, vertices * 3)))
    with open(root / "templates.pkl", "wb") as handle:
        pickle.dump(templates, handle)


def test_biwi_layout_by_sentence_number(tmp_path):
    write_biwi(tmp_path)
    sets = {split: AnimationDataset(tmp_path, "biwi", split) for split in ("train", "val", "test")}
    assert [s.name for s in sets["train"].sequences] == ["F2_e01", "M3_e01"]
    assert [s.name for s in sets["val"].sequences] == ["F2_e33", "M3_e33"]
    assert [s.name for s in sets["test"].sequences] == ["F2_e37", "M3_e37"]
    item = sets["test"][1]
    assert item["labels"].shape == (12, 36)  # 25 fps kept as stored
    assert item["subject_index"] == sets["test"].train_subjects.index("M3")  # Test-A: seen speakers


def test_missing_files_are_reported(tmp_path):
    write_biwi(tmp_path)
    (tmp_path / "wav" / "F2_e01.wav").unlink()
    dataset = AnimationDataset(tmp_path, "biwi", "train")
    assert [s.name for s in dataset.sequences] == ["M3_e01"]
    assert dataset.skipped["missing audio"] == ["F2_e01"]
    with pytest.raises(ValueError, match="No usable val sequences"):
        AnimationDataset(tmp_path, "biwi", "val", subjects=["F9"])
    with pytest.raises(FileNotFoundError, match="no wav/"):
        AnimationDataset(tmp_path / "nothing", "biwi", "train")
    with pytest.raises(ValueError, match="Unknown dataset"):
        AnimationDataset(tmp_path, "multiface", "train")


def test_unreadable_and_mismatched_files_are_skipped_and_counted(tmp_path):
    write_biwi(tmp_path, sentences=(1, 2, 3, 4, 5))
    (tmp_path / "wav" / "F2_e02.wav").write_bytes(b"not a wav file")
    (tmp_path / "vertices_npy" / "F2_e03.npy").write_bytes(b"not an npy file")
    np.save(tmp_path / "vertices_npy" / "F2_e04.npy", np.zeros((10, 30)))  # 10 vertices, the template has 12
    np.save(tmp_path / "vertices_npy" / "F2_e05.npy", np.zeros((500, 36)))  # 500 frames for < 1 s of audio
    dataset = AnimationDataset(tmp_path, "biwi", "train")
    assert dataset.skipped == {
        "unreadable audio": ["F2_e02"], "unreadable vertices": ["F2_e03"], "vertex count differs": ["F2_e04"],
        "vertices far longer than audio": ["F2_e05"],
    }
    assert [s.name for s in dataset.sequences] == ["F2_e01", "M3_e01", "M3_e02", "M3_e03", "M3_e04", "M3_e05"]
    assert "unreadable audio: 1" in dataset.skipped_summary()


def test_splits_and_naming_come_from_the_registry():
    vocaset, biwi = ANIMATION_DATASETS["vocaset"], ANIMATION_DATASETS["biwi"]
    assert vocaset.parse("FaceTalk_170728_03272_TA_sentence07") == ("FaceTalk_170728_03272_TA", 7)
    assert vocaset.sequence_name("FaceTalk_170728_03272_TA", 7) == "FaceTalk_170728_03272_TA_sentence07"
    assert biwi.parse("F2_e37") == ("F2", 37) and biwi.splits_of("F2", 37) == ["test"]
    assert vocaset.splits_of("FaceTalk_170809_00138_TA", 21) == ["test"] and vocaset.splits_of("x", 1) == []
    assert vocaset.vertex_stride(30) == 2 and vocaset.vertex_stride(60) == 1
    with pytest.raises(ValueError, match="non-integer frame stride"):
        vocaset.vertex_stride(25)


def test_vertices_follow_the_model_frame_rate_and_audio_the_extractor():
    at_60 = AnimationDataset(SAMPLE, "vocaset", "train", frame_rate=60)  # VOCA's published rate
    at_30 = AnimationDataset(SAMPLE, "vocaset", "train")
    stored = np.load(at_60.sequences[0].vertices)
    np.testing.assert_array_equal(at_60[0]["labels"], stored)
    assert len(at_30[0]["labels"]) == (len(stored) + 1) // 2
    raw = AnimationDataset(SAMPLE, "vocaset", "train", feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=False))
    assert abs(float(raw[0]["input_values"].std()) - 1) > 0.05  # HuBERT-base style: not normalised


def test_collate_refuses_mixed_meshes():
    dataset = AnimationDataset(SAMPLE, "vocaset", "test")
    other = dict(dataset[1], labels=np.zeros((5, 30), np.float32), template=np.zeros(30, np.float32))
    with pytest.raises(ValueError, match="mixes meshes"):
        collate_animation([dataset[0], other])


def test_collate_pads_with_masks():
    dataset = AnimationDataset(SAMPLE, "vocaset", "test")
    items = [dataset[0], dataset[2]]
    batch = collate_animation(items)
    lengths = [len(i["labels"]) for i in items]
    assert batch["labels"].shape == (2, max(lengths), 810)
    assert batch["vertex_mask"].sum(1).tolist() == lengths
    assert batch["attention_mask"].sum(1).tolist() == [len(i["input_values"]) for i in items]
    assert "vertex_mask" not in collate_animation([items[0], items[0]])


def test_conditions_for_seen_and_unseen_speakers():
    assert conditions_for(3, 8, "all") == [3]
    assert conditions_for(-1, 8, "all") == list(range(8))
    assert conditions_for(-1, 8, "first") == [0]


def test_scores_pool_every_prediction():
    rng = np.random.default_rng(0)
    results = [
        {"name": f"s{i}", "prediction": rng.normal(size=(6 + i, 30)), "reference": rng.normal(size=(5 + i, 30)),
         "template": rng.normal(size=30)}
        for i in range(3)
    ]
    regions = Regions(lip=np.array([0, 4]), upper_face=np.array([1, 2, 3]))
    metrics = score_predictions(results, regions, 1e-5, 1e-5)
    predictions, references = [r["prediction"] for r in results], [r["reference"] for r in results]
    assert metrics["lve"] == pytest.approx(lip_vertex_error(predictions, references, [0, 4]) / 1e-5)
    assert metrics["mve"] == pytest.approx(mean_vertex_error(predictions, references) / 1e-5)
    assert metrics["num_frames"] == 5 + 6 + 7 and metrics["fdd"] is not None
    with pytest.raises(ValueError, match="lip vertex indices"):
        score_predictions(results, Regions(None, None), 1e-5, 1e-5)


def test_obj_faces_are_read_and_fanned(tmp_path):
    (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\nf 1/1 3/3 4/4\n")
    assert read_obj_faces(tmp_path / "m.obj").tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
