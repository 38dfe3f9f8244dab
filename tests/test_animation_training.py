"""Animation training pipeline: VOCASET/BIWI loaders, train_animation.py end to end (tiny encoders, embedded sample),
scoring, the saved model's Auto round trip, the animate CLI and the mocked Hub push."""

import contextlib
import json
import pickle
from unittest import mock

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoModel, HubertConfig

from modeling_wav2sem import FaceFormerForAnimation, Wav2SemConfig, Wav2SemFusedEncoder, Wav2SemModel
from modeling_wav2sem.metrics import lip_vertex_error, mean_vertex_error
from training import animate, train_animation
from training.animation_data import AnimationDataset, Regions, collate_animation, default_animation_dir
from training.animation_render import read_obj_faces

TINY_HUBERT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0, mask_time_prob=0.0,
)
SAMPLE = default_animation_dir()


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("anim-encoders")
    torch.manual_seed(1)
    AutoModel.from_config(HubertConfig(**TINY_HUBERT)).save_pretrained(root / "hubert")
    torch.manual_seed(2)
    Wav2SemModel(Wav2SemConfig.from_preset("tiny")).save_pretrained(root / "wav2sem")
    return {"plain": str(root / "hubert"), "wav2sem": str(root / "wav2sem")}


def run_training(encoders, out, *extra):
    argv = [
        "--audio_encoder", encoders["plain"], "--output_dir", str(out), "--max_train_steps", "3",
        "--max_test_sequences", "1", "--render_frames", "2", "--logging_steps", "1", *extra,
    ]
    return train_animation.main(argv)


@pytest.fixture(scope="module")
def trained(encoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("anim-run") / "faceformer-wav2sem"
    summary = run_training(encoders, out, "--wav2sem", encoders["wav2sem"])
    return out, summary


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
    with pytest.raises(ValueError, match="No val sequences"):
        AnimationDataset(tmp_path, "biwi", "val", subjects=["F9"])
    with pytest.raises(FileNotFoundError, match="no wav/"):
        AnimationDataset(tmp_path / "nothing", "biwi", "train")
    with pytest.raises(ValueError, match="Unknown dataset"):
        AnimationDataset(tmp_path, "multiface", "train")


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
    assert train_animation.conditions_for(3, 8, "all") == [3]
    assert train_animation.conditions_for(-1, 8, "all") == list(range(8))
    assert train_animation.conditions_for(-1, 8, "first") == [0]


def test_scores_pool_every_prediction():
    rng = np.random.default_rng(0)
    results = [
        {"name": f"s{i}", "prediction": rng.normal(size=(6 + i, 30)), "reference": rng.normal(size=(5 + i, 30)),
         "template": rng.normal(size=30)}
        for i in range(3)
    ]
    regions = Regions(lip=np.array([0, 4]), upper_face=np.array([1, 2, 3]))
    metrics = train_animation.score_predictions(results, regions, 1e-5, 1e-5)
    predictions, references = [r["prediction"] for r in results], [r["reference"] for r in results]
    assert metrics["lve"] == pytest.approx(lip_vertex_error(predictions, references, [0, 4]) / 1e-5)
    assert metrics["mve"] == pytest.approx(mean_vertex_error(predictions, references) / 1e-5)
    assert metrics["num_frames"] == 5 + 6 + 7 and metrics["fdd"] is not None
    with pytest.raises(ValueError, match="lip vertex indices"):
        train_animation.score_predictions(results, Regions(None, None), 1e-5, 1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Training end to end
# ---------------------------------------------------------------------------------------------------------------------


def test_training_writes_a_complete_model_folder(trained):
    out, summary = trained
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "templates.pkl",
            "results.json", "metrics.jsonl", "modeling_faceformer.py"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert summary["steps"] == 3
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["num_sequences"] == 1 and metrics["num_predictions"] == 8  # an unseen speaker, 8 styles
    assert all(np.isfinite(metrics[k]) and metrics[k] > 0 for k in ("lve", "mve"))
    losses = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses if "train_loss" in r] == [1, 2, 3]
    card = (out / "README.md").read_text()
    assert "model-index" in card and "type: lve" in card and "Wav2Sem module" in card
    pngs = sorted((out / "renders").glob("*.png"))
    gifs = sorted((out / "renders").glob("*.gif"))
    assert len(pngs) == 1 and len(gifs) == 1 and pngs[0].stat().st_size > 1000


def test_trained_model_round_trips_through_automodel(trained):
    out, _ = trained
    model = AutoModel.from_pretrained(out).eval()
    assert isinstance(model, FaceFormerForAnimation) and isinstance(model.audio_encoder, Wav2SemFusedEncoder)
    assert not any(p.requires_grad for p in model.audio_encoder.wav2sem.parameters())
    # the reloaded model reproduces the test score recorded at the end of training
    test = AnimationDataset(SAMPLE, "vocaset", "test", model.config.train_subjects)
    results = train_animation.predict_test_split(model, test, "cpu", contextlib.nullcontext, "all", 1)
    metrics = train_animation.score_predictions(results, Regions.from_folder(SAMPLE), 1e-5, 1e-5)
    recorded = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["lve"] == pytest.approx(recorded["lve"], rel=1e-5)
    assert metrics["fdd"] == pytest.approx(recorded["fdd"], rel=1e-4, abs=1e-6)


def test_baseline_is_the_same_command_without_wav2sem(encoders, trained, tmp_path):
    summary = run_training(encoders, tmp_path / "baseline", "--render_gif", "false", "--render_frames", "0")
    baseline = AutoModel.from_pretrained(tmp_path / "baseline")
    fused = AutoModel.from_pretrained(trained[0])
    assert type(baseline.audio_encoder).__name__ == "HubertModel"
    outside = {k: v.shape for k, v in baseline.state_dict().items() if not k.startswith("audio_encoder.")}
    assert outside == {k: v.shape for k, v in fused.state_dict().items() if not k.startswith("audio_encoder.")}
    assert summary["renders"] == []


def test_animate_cli(trained, tmp_path, capsys):
    out, _ = trained
    wav = SAMPLE / "wav" / "FaceTalk_170731_00024_TA_sentence21.wav"
    subject = "FaceTalk_170904_00128_TA"
    assert animate.main(["--model", str(out), "--audio", str(wav), "--subject", subject, "--out", str(tmp_path)]) == 0
    vertices = np.load(tmp_path / f"{wav.stem}_{subject}.npy")
    samples = sf.info(wav).frames
    conv_frames = (samples - 400) // 320 + 1
    assert vertices.shape == (conv_frames * 30 // 50, 810)
    assert (tmp_path / f"{wav.stem}_{subject}.png").is_file()
    assert "frames at 30 fps" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown subject"):
        animate.main(["--model", str(out), "--audio", str(wav), "--subject", "nobody", "--out", str(tmp_path)])


def test_push_uploads_the_folder_with_hfapi_mocked(encoders, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with mock.patch("training.hub.HfApi") as api:
        api.return_value.upload_folder.return_value = mock.Mock(commit_url="https://hub/commit/1")
        run_training(encoders, tmp_path / "pushed", "--render_frames", "0", "--render_gif", "false",
                     "--push_to_hub", "--hub_model_id", "org/faceformer-test")
    api.return_value.create_repo.assert_called_once_with("org/faceformer-test", private=False, exist_ok=True)
    kwargs = api.return_value.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "org/faceformer-test" and kwargs["folder_path"] == str(tmp_path / "pushed")
    assert "org/faceformer-test" in (tmp_path / "pushed" / "README.md").read_text()


def test_push_without_token_keeps_the_folder(encoders, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("training.hub.get_token", lambda: None)
    summary = run_training(encoders, tmp_path / "kept", "--render_frames", "0", "--render_gif", "false",
                           "--push_to_hub", "--hub_model_id", "org/x")
    assert "No Hugging Face token" in summary["push_error"]
    assert (tmp_path / "kept" / "model.safetensors").is_file()


def test_obj_faces_are_read_and_fanned(tmp_path):
    (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\nf 1/1 3/3 4/4\n")
    assert read_obj_faces(tmp_path / "m.obj").tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
