"""The animation runner end to end, for every registered model (`ANIMATION_RECIPES`), on the embedded sample with tiny
random encoders: train, kill with SIGKILL and resume (same losses), score, save, reload, animate, push (mocked)."""

import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoModel, HubertConfig

from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedEncoder, Wav2SemModel
from training import animate, train_animation
from training.animation.data import AnimationDataset, Regions, default_animation_dir
from training.animation.evaluation import prediction_diversity, predict_test_split, sampling_kwargs, score_predictions
from training.animation.recipes import ANIMATION_RECIPES

REPO = Path(__file__).resolve().parent.parent
SAMPLE = default_animation_dir()
MODELS = sorted(ANIMATION_RECIPES)
TINY_HUBERT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, layerdrop=0.0, mask_time_prob=0.0,
)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("anim-encoders")
    torch.manual_seed(1)
    AutoModel.from_config(HubertConfig(**TINY_HUBERT)).save_pretrained(root / "hubert")
    torch.manual_seed(2)
    Wav2SemModel(Wav2SemConfig.from_preset("tiny")).save_pretrained(root / "wav2sem")
    return {"plain": str(root / "hubert"), "wav2sem": str(root / "wav2sem")}


# Tiny configs where a model's published one is too large for these tests (CodeTalker: d 1024, a 1024-wide VQ-VAE).
TINY_OVERRIDES = {
    "facediffuser": {"feature_dim": 8, "gru_hidden_size": 8, "num_train_timesteps": 5},
    "unitalker": {"hidden_size": 16, "identity_dim": 8, "pca_dim": 16},
    "codetalker": {
        "feature_dim": 16, "num_hidden_layers": 1,
        "vqvae_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24,
                         "tokens_per_frame": 4, "code_dim": 4, "num_embeddings": 32},
    },
    "lgldm": {
        "feature_dim": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_inference_steps": 3,
        "vqvae_config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24,
                         "tokens_per_frame": 4, "code_dim": 4, "num_embeddings": 32},
    },
}


def run_args(encoders, out, model, *extra):
    overrides = ["--config_overrides", json.dumps(TINY_OVERRIDES[model])] if model in TINY_OVERRIDES else []
    return [
        "--model", model, "--audio_encoder", encoders["plain"], "--output_dir", str(out), "--max_train_steps", "3",
        "--per_device_train_batch_size", "2", "--max_test_sequences", "1", "--render_frames", "2",
        "--render_gif", "false", "--render_video", "false", "--logging_steps", "1", *overrides, *extra,
    ]


@pytest.fixture(scope="module", params=MODELS)
def trained(request, encoders, tmp_path_factory):
    model = request.param
    out = tmp_path_factory.mktemp(f"run-{model}") / f"{model}-wav2sem"
    summary = train_animation.main(run_args(encoders, out, model, "--wav2sem", encoders["wav2sem"], "--render_gif", "true",
                             "--render_video", "true"))
    return model, out, summary


def training_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------------
# Every registered model
# ---------------------------------------------------------------------------------------------------------------------


def test_training_writes_a_complete_model_folder(trained):
    model, out, summary = trained
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "templates.pkl",
            "results.json", "metrics.jsonl", "data_report.json", f"modeling_{model}.py", "modeling_animation.py"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert summary["steps"] == 3 and summary["model"] == model
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["num_sequences"] == 1 and metrics["num_predictions"] == 8  # an unseen speaker, 8 styles
    assert all(np.isfinite(metrics[k]) and metrics[k] > 0 for k in ("lve", "mve", "diversity"))  # styles differ
    records = training_records(out / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert any("val_loss" in r for r in records)
    card = (out / "README.md").read_text()
    assert "model-index" in card and "type: lve" in card and "Wav2Sem module" in card
    assert ANIMATION_RECIPES[model].display_name in card
    assert json.loads((out / "data_report.json").read_text())["splits"]["train"]["sequences"] == 8
    pngs, gifs = sorted((out / "renders").glob("*.png")), sorted((out / "renders").glob("*.gif"))
    assert len(pngs) == 1 and len(gifs) == 1 and pngs[0].stat().st_size > 1000
    (video,) = sorted((out / "renders").glob("*.mp4"))
    with av.open(str(video)) as container:  # the test sequence's speech, muxed in, at the model's frame rate
        assert {s.type for s in container.streams} == {"video", "audio"}
        assert float(container.streams.video[0].average_rate) == pytest.approx(AutoModel.from_pretrained(out).config.frame_rate)


def test_diversity_and_seeded_sampling_settings(encoders, tmp_path):
    # FaceDiffuser's diversity: per sequence the mean over pairs of styles of the mean per-vertex L2 distance.
    base = np.zeros((2, 1, 3))
    results = [{"name": "a", "prediction": base + np.array([3.0, 0, 0]) * i} for i in range(3)]  # distances 3, 3, 6
    results += [{"name": "b", "prediction": base}]  # one style only: not counted
    assert prediction_diversity(results, scale=1e-5) == pytest.approx(4.0 / 1e-5)
    assert prediction_diversity(results[-1:]) is None
    sampler = ANIMATION_RECIPES["facediffuser"].model_class
    args = train_animation.parse_args(run_args(encoders, tmp_path, "facediffuser", "--num_inference_steps", "2"))
    assert args.num_inference_steps == 2 and "num_inference_steps" in inspect.signature(sampler.predict).parameters
    with pytest.raises(ValueError, match="does not sample"):
        train_animation.parse_args(run_args(encoders, tmp_path, "voca", "--num_inference_steps", "2"))
    kwargs = sampling_kwargs(mock.Mock(predict=sampler.predict), 7, 2)
    assert kwargs["num_inference_steps"] == 2
    assert torch.equal(torch.randn(3, generator=kwargs["generator"]), torch.randn(3, generator=torch.Generator().manual_seed(7)))
    assert sampling_kwargs(mock.Mock(predict=ANIMATION_RECIPES["voca"].model_class.predict), 7) == {}


def test_trained_model_round_trips_through_automodel(trained):
    model_name, out, _ = trained
    model = AutoModel.from_pretrained(out).eval()
    assert isinstance(model, ANIMATION_RECIPES[model_name].model_class)
    assert isinstance(model.audio_encoder, Wav2SemFusedEncoder)
    assert not any(p.requires_grad for p in model.audio_encoder.wav2sem.parameters())
    assert not any(p.requires_grad for p in model.speech_backbone.feature_extractor.parameters())
    test = AnimationDataset(
        SAMPLE, "vocaset", "test", model.config.train_subjects, frame_rate=model.config.frame_rate,
        feature_extractor=model.build_feature_extractor(),
    )
    results = predict_test_split(model, test, "cpu", contextlib.nullcontext, "all", 1, sampling_kwargs(model, 0))
    metrics = score_predictions(results, Regions.from_folder(SAMPLE), 1e-5, 1e-5)
    recorded = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["lve"] == pytest.approx(recorded["lve"], rel=1e-5)  # the reloaded model gives the recorded score
    assert metrics["fdd"] == pytest.approx(recorded["fdd"], rel=1e-4, abs=1e-6)


def test_animate_cli(trained, tmp_path, capsys):
    _, out, _ = trained
    model = AutoModel.from_pretrained(out)
    wav = SAMPLE / "wav" / "FaceTalk_170731_00024_TA_sentence21.wav"
    subject = "FaceTalk_170904_00128_TA"
    assert animate.main(["--model", str(out), "--audio", str(wav), "--subject", subject, "--out", str(tmp_path)]) == 0
    vertices = np.load(tmp_path / f"{wav.stem}_{subject}.npy")
    conv_frames = (sf.info(wav).frames - 400) // 320 + 1
    fps = model.config.frame_rate
    assert vertices.shape == (int(conv_frames * fps // 50), 810)
    assert (tmp_path / f"{wav.stem}_{subject}.png").is_file()
    assert f"frames at {fps:g} fps" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown subject"):
        animate.main(["--model", str(out), "--audio", str(wav), "--subject", "nobody", "--out", str(tmp_path)])


@pytest.mark.parametrize("model", MODELS)
def test_baseline_is_the_same_command_without_wav2sem(model, encoders, tmp_path):
    baseline = tmp_path / "baseline"
    summary = train_animation.main(run_args(encoders, baseline, model, "--render_frames", "0", "--max_train_steps", "1"))
    fused = tmp_path / "fused"
    train_animation.main(run_args(encoders, fused, model, "--render_frames", "0", "--max_train_steps", "1",
                                  "--wav2sem", encoders["wav2sem"]))
    baseline, fused = AutoModel.from_pretrained(baseline), AutoModel.from_pretrained(fused)
    assert type(baseline.audio_encoder).__name__ == "HubertModel"
    outside = {k: v.shape for k, v in baseline.state_dict().items() if not k.startswith("audio_encoder.")}
    assert outside == {k: v.shape for k, v in fused.state_dict().items() if not k.startswith("audio_encoder.")}
    assert summary["renders"] == []


def kill_after_a_checkpoint_and_resume(encoders, tmp_path, model, stage_folder: str, *extra) -> tuple[Path, Path]:
    """Train `model` for 6 steps of batch 2 with a checkpoint every 2 steps, uninterrupted (`reference`) and again
    (`crashed`) killed with SIGKILL once the run in `stage_folder` (`.` for the output folder itself) has logged a step
    past checkpoint-2 and before that stage completes, then resumed from `latest`. Returns both output folders.
    `extra` arguments go to every run."""
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "2", "--render_frames", "0", "--max_test_sequences", "1",
             *extra]
    script = [sys.executable, str(REPO / "training" / "train_animation.py")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(script + run_args(encoders, reference, model, *steps), check=True, env=env, capture_output=True,
                   timeout=600)
    args = run_args(encoders, crashed, model, *steps)
    process = subprocess.Popen(script + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    stage_dir = crashed / stage_folder

    def logged_past_checkpoint():
        log = stage_dir / "metrics.jsonl"
        if not (stage_dir / "checkpoints" / "checkpoint-2").is_dir() or not log.is_file():
            return False
        return any(r.get("step", 0) > 2 and "loss" in r for r in training_records(log))

    while not logged_past_checkpoint() and time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the stage did not complete
    assert not (stage_dir / "results.json").exists() and not (stage_dir / "model.safetensors").exists()
    subprocess.run(script + args + ["--resume_from_checkpoint", "latest"], check=True, env=env, capture_output=True,
                   timeout=600)
    return reference, crashed


@pytest.mark.parametrize("model", MODELS)
def test_sigkill_and_resume_logs_the_same_losses(model, encoders, tmp_path):
    """6 steps of batch 2 over 8 sequences (2 epochs), a checkpoint every 2 steps; the run is killed once it has logged
    a step past checkpoint-2, resumed from `latest`, and must log the uninterrupted run's losses, each step once."""
    reference, crashed = kill_after_a_checkpoint_and_resume(encoders, tmp_path, model, ".")
    expected, resumed = training_records(reference / "metrics.jsonl"), training_records(crashed / "metrics.jsonl")
    assert [r["step"] for r in resumed if "loss" in r] == list(range(1, 7))  # each step once
    assert [r["epoch"] for r in resumed if "loss" in r] == [r["epoch"] for r in expected if "loss" in r]
    assert [r["loss"] for r in resumed if "loss" in r] == pytest.approx([r["loss"] for r in expected if "loss" in r])
    epochs = [r["train_loss_epoch"] for r in resumed if "train_loss_epoch" in r]
    assert epochs == pytest.approx([r["train_loss_epoch"] for r in expected if "train_loss_epoch" in r])
    scores = [json.loads((folder / "results.json").read_text())["metrics"]["lve"] for folder in (reference, crashed)]
    assert scores[0] == pytest.approx(scores[1], rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Models trained in stages (CodeTalker: the VQ-VAE, then the predictor)
# ---------------------------------------------------------------------------------------------------------------------

STAGED = sorted(name for name, recipe in ANIMATION_RECIPES.items() if len(recipe.training_stages) > 1)


@pytest.mark.parametrize("model", STAGED)
def test_stages_one_at_a_time_equal_one_run(model, encoders, tmp_path, trained_staged):
    """`--stage vqvae`, then `--stage predictor --vqvae OUT/vqvae`, gives the one-run model; the intermediate model
    is saved under OUTPUT/<stage>/, and the card names every stage."""
    one_run = trained_staged(model)
    first, second = ANIMATION_RECIPES[model].training_stages
    assert (one_run / first.name / "model.safetensors").is_file()
    assert not (one_run / first.name / "checkpoints").exists()  # a complete stage keeps its model, not its state
    assert not (one_run / first.name / "README.md").exists()  # only the scored stage is carded
    vqvae = AutoModel.from_pretrained(one_run / first.name)
    assert type(vqvae).__name__ == "CodeTalkerVQVAE" and not hasattr(vqvae, "audio_encoder")
    card = (one_run / "README.md").read_text()
    assert f"`{first.name}`" in card and f"`{second.name}`" in card and "AdamW" in card
    stages = json.loads((one_run / "results.json").read_text())["stages"]
    assert stages[first.name]["steps"] == 3

    separate = tmp_path / "separate"
    train_animation.main(run_args(encoders, separate, model, "--stage", first.name, "--render_frames", "0"))
    assert (separate / first.name / "model.safetensors").is_file() and not (separate / "model.safetensors").exists()
    summary = train_animation.main(run_args(encoders, separate / "final", model, "--stage", second.name,
                                            "--vqvae", str(separate / first.name), "--render_frames", "0"))
    assert summary["metrics"]["lve"] == pytest.approx(
        json.loads((one_run / "results.json").read_text())["metrics"]["lve"], rel=1e-5)
    assert f"--vqvae {separate / first.name}" in (separate / "final" / "README.md").read_text()
    with pytest.raises(ValueError, match="needs a trained vqvae"):
        train_animation.parse_args(run_args(encoders, tmp_path, model, "--stage", second.name))
    with pytest.raises(ValueError, match="--stage must be"):
        train_animation.parse_args(run_args(encoders, tmp_path, model, "--stage", "no-such-stage"))


def test_codetalker_vocaset_stage1_halves_the_learning_rate_every_20_epochs():
    from training.animation.recipes import stage_learning_rate

    vqvae, predictor = ANIMATION_RECIPES["codetalker"].training_stages
    rates = [stage_learning_rate(1e-4, vqvae, "vocaset", step, 10) for step in (0, 199, 200, 399, 400)]
    assert rates == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5])
    assert stage_learning_rate(1e-4, vqvae, "biwi", 10**6, 10) == 1e-4  # BIWI's stage 1 has no schedule
    assert stage_learning_rate(1e-4, predictor, "vocaset", 10**6, 10) == 1e-4


@pytest.fixture(scope="module")
def trained_staged(encoders, tmp_path_factory):
    """`model -> folder` of its one run over all stages (trained once per model)."""
    runs = {}

    def run(model: str):
        if model not in runs:
            runs[model] = tmp_path_factory.mktemp(f"staged-{model}") / "one-run"
            train_animation.main(run_args(encoders, runs[model], model, "--render_frames", "0"))
        return runs[model]

    return run


@pytest.mark.parametrize("model", STAGED)
def test_sigkill_in_an_earlier_stage_resumes_it(model, encoders, tmp_path):
    """Killed in the first stage (past its checkpoint-2), resumed from `latest`: that stage logs the uninterrupted
    run's losses, each step once, and the later stage and the score follow as in the uninterrupted run."""
    first = ANIMATION_RECIPES[model].training_stages[0].name
    reference, crashed = kill_after_a_checkpoint_and_resume(encoders, tmp_path, model, first)
    for folder in (first, "."):
        expected = training_records(reference / folder / "metrics.jsonl")
        resumed = training_records(crashed / folder / "metrics.jsonl")
        assert [r["step"] for r in resumed if "loss" in r] == list(range(1, 7))
        assert [r["loss"] for r in resumed if "loss" in r] == pytest.approx([r["loss"] for r in expected if "loss" in r])
    scores = [json.loads((folder / "results.json").read_text())["metrics"]["lve"] for folder in (reference, crashed)]
    assert scores[0] == pytest.approx(scores[1], rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Runner behaviour shared by all models
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_push_uploads_the_folder_with_hfapi_mocked(model, encoders, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with mock.patch("training.common.hub.HfApi") as api:
        api.return_value.upload_folder.return_value = mock.Mock(commit_url="https://hub/commit/1")
        argv = run_args(encoders, tmp_path / "pushed", model, "--render_frames", "0", "--max_train_steps", "1",
                        "--push_to_hub", "--hub_model_id", "org/test-model")
        summary = train_animation.main(argv)
    api.return_value.create_repo.assert_called_once_with("org/test-model", private=False, exist_ok=True)
    kwargs = api.return_value.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "org/test-model" and kwargs["folder_path"] == str(tmp_path / "pushed")
    assert "checkpoints/*" in kwargs["ignore_patterns"]
    assert summary["pushed_to"] == "https://hub/commit/1"
    assert "org/test-model" in (tmp_path / "pushed" / "README.md").read_text()
    assert "hf_test" not in (tmp_path / "pushed" / "results.json").read_text()


def test_push_without_token_fails_before_any_work(encoders, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("training.common.hub.get_token", lambda: None)
    with pytest.raises(SystemExit, match="No Hugging Face token"):
        train_animation.main(run_args(encoders, tmp_path / "kept", "faceformer", "--push_to_hub",
                                      "--hub_model_id", "org/x"))
    assert not (tmp_path / "kept").exists()


def test_bad_arguments_are_refused_clearly(encoders, tmp_path):
    with pytest.raises(ValueError, match="--model must be one of"):
        train_animation.parse_args(run_args(encoders, tmp_path, "wavenet"))
    with pytest.raises(ValueError, match="Unknown dataset"):
        train_animation.parse_args(run_args(encoders, tmp_path, "voca", "--dataset", "multiface"))
    with pytest.raises(ValueError, match="no preset"):
        train_animation.parse_args(run_args(encoders, tmp_path, "faceformer", "--preset", "vocaset-30fps"))
    args = train_animation.parse_args(run_args(encoders, tmp_path, "voca", "--preset", "vocaset-30fps"))
    assert args.preset == "vocaset-30fps" and args.learning_rate == 1e-4 and args.num_train_epochs == 100


def test_a_checkpoint_of_another_model_type_is_refused(encoders, tmp_path):
    out = tmp_path / "voca"
    train_animation.main(run_args(encoders, out, "voca", "--max_train_steps", "1", "--render_frames", "0"))
    with pytest.raises(ValueError):
        ANIMATION_RECIPES["faceformer"].model_class.from_pretrained(out)


# ---------------------------------------------------------------------------------------------------------------------
# Several datasets in one run (UniTalker: VOCASET + BIWI layouts, two mesh types)
# ---------------------------------------------------------------------------------------------------------------------

MIXTURE = ["--datasets", "vocaset", "biwi", "--dataset_repeats", "biwi=2"]


def test_mixture_trains_resumes_and_scores_each_dataset(encoders, tmp_path):
    """UniTalker on the VOCASET and BIWI samples together (8 + 2 x 6 training sequences, batches of one dataset):
    killed with SIGKILL after a checkpoint and resumed, it logs the uninterrupted run's losses; each dataset is
    scored apart with its own scales and protocol; the saved model has both heads, identities and PCA bases."""
    reference, crashed = kill_after_a_checkpoint_and_resume(encoders, tmp_path, "unitalker", ".", *MIXTURE)
    expected, resumed = training_records(reference / "metrics.jsonl"), training_records(crashed / "metrics.jsonl")
    assert [r["step"] for r in resumed if "loss" in r] == list(range(1, 7))
    assert [r["loss"] for r in resumed if "loss" in r] == pytest.approx([r["loss"] for r in expected if "loss" in r])
    results = json.loads((crashed / "results.json").read_text())
    assert results["metrics"] == results["metrics_by_dataset"]["vocaset"]  # the first dataset's, as for one dataset
    voca, biwi = results["metrics_by_dataset"]["vocaset"], results["metrics_by_dataset"]["biwi"]
    assert voca["num_predictions"] == 8 and biwi["num_predictions"] == 1  # unseen speaker x 8 styles; a seen one
    assert biwi["lve"] == pytest.approx(
        json.loads((reference / "results.json").read_text())["metrics_by_dataset"]["biwi"]["lve"], rel=1e-5
    )
    own = results["sequence_metrics_by_dataset"]
    assert own["biwi"]["vertex_scale"] == 0.2 and own["vocaset"]["vertex_scale"] == 1.0
    assert all(np.isfinite(own[d]["lve"]) and own[d]["lvd"] > 0 for d in own)
    report = json.loads((crashed / "data_report.json").read_text())
    assert report["datasets"]["biwi"]["repeats"] == 2 and report["datasets"]["vocaset"]["repeats"] == 1
    assert report["datasets"]["biwi"]["splits"]["train"]["frame_rate"] == 25.0
    model = AutoModel.from_pretrained(crashed)
    assert model.config.dataset_names == ["vocaset", "biwi"] and model.config.num_identities == 8 + 6 + 1
    assert set(model.heads) == {"FLAME_270_vertices", "BIWI_318_vertices"}
    for basis in model.pca.values():  # fitted from the training offsets, not the initial coordinate axes
        assert not torch.allclose(basis.components, torch.eye(*basis.components.shape))
    assert (crashed / "biwi" / "templates.pkl").is_file() and (crashed / "templates.pkl").is_file()
    card = (crashed / "README.md").read_text()
    assert "VOCASET + BIWI" in card and "type: biwi" in card and "type: vocaset" in card


def test_mixture_pushes_and_clips_long_sequences(encoders, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with mock.patch("training.common.hub.HfApi") as api:
        api.return_value.upload_folder.return_value = mock.Mock(commit_url="https://hub/commit/2")
        argv = run_args(encoders, tmp_path / "pushed", "unitalker", "--render_frames", "0", "--max_train_steps", "1",
                        *MIXTURE, "--max_clip_seconds", "1.5", "--push_to_hub", "--hub_model_id", "org/unitalker")
        summary = train_animation.main(argv)
    assert api.return_value.upload_folder.call_args.kwargs["folder_path"] == str(tmp_path / "pushed")
    assert summary["pushed_to"] == "https://hub/commit/2"
    report = json.loads((tmp_path / "pushed" / "data_report.json").read_text())
    clipped = report["datasets"]["biwi"]["splits"]["train"]["clipped"]
    train_wavs = (default_animation_dir("biwi") / "wav").glob("*_e01.wav")
    longer = sorted(p.stem for p in train_wavs if sf.info(p).duration > 1.5)
    assert report["max_clip_seconds"] == 1.5 and sorted(clipped) == longer and longer
    assert "clips cut to 1.5 s" in (tmp_path / "pushed" / "README.md").read_text()


def test_mixture_arguments_are_checked(encoders, tmp_path):
    with pytest.raises(ValueError, match="trains on one dataset"):
        train_animation.parse_args(run_args(encoders, tmp_path, "faceformer", "--datasets", "vocaset", "biwi"))
    with pytest.raises(ValueError, match="twice"):
        train_animation.parse_args(run_args(encoders, tmp_path, "unitalker", "--datasets", "vocaset", "vocaset"))
    with pytest.raises(ValueError, match="not among the run's datasets"):
        train_animation.parse_args(run_args(encoders, tmp_path, "unitalker", "--datasets", "vocaset",
                                            "--dataset_repeats", "biwi=2"))
    with pytest.raises(ValueError, match="N >= 1"):
        train_animation.parse_args(run_args(encoders, tmp_path, "unitalker", *MIXTURE[:3], "--dataset_repeats",
                                            "biwi=0"))
    args = train_animation.parse_args(run_args(encoders, tmp_path, "unitalker", *MIXTURE))
    assert list(args.dataset_dirs) == ["vocaset", "biwi"] and args.dataset == "vocaset"
    assert args.dataset_dirs["biwi"] == str(default_animation_dir("biwi")) and args.dataset_repeat_counts == {"biwi": 2}
    one = train_animation.parse_args(run_args(encoders, tmp_path, "voca"))
    assert one.dataset_dirs == {"vocaset": str(SAMPLE)} and one.max_clip_seconds is None  # no truncation by default
