"""Pretraining end to end: data sources and skip counts, cached teacher targets, the training script, kill & resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel

from modeling_wav2sem import Wav2SemModel
from training import pretraining_data as pdata
from training.pretrain import main as pretrain_main
from training.pretrain import parse_args as pretrain_parse_args

REPO = Path(__file__).resolve().parent.parent
CORPUS = pdata.default_corpus_dir()


def small_openslr(root: Path, chapters: int = 2, corrupt: bool = False) -> Path:
    """A copy of a few chapters of the embedded corpus (optionally with broken entries)."""
    source = sorted((CORPUS / "train-clean-100").glob("*/*"))[:chapters]
    target = root / "LibriSpeech" / "train-clean-100"
    for chapter in source:
        shutil.copytree(chapter, target / chapter.parent.name / chapter.name)
    if corrupt:
        chapter = target / source[0].parent.name / source[0].name
        flacs = sorted(chapter.glob("*.flac"))
        flacs[0].write_bytes(os.urandom(3000))  # unreadable
        flacs[1].unlink()  # transcript line without audio
        transcript = next(chapter.glob("*.trans.txt"))
        with open(transcript, "a") as f:
            f.write(f"{chapter.parent.name}-{chapter.name}-9999 \n")  # empty transcript (and no audio)
        sf.write(chapter / f"{chapter.parent.name}-{chapter.name}-9998.flac", np.zeros(200, np.float32), 16000)
        with open(transcript, "a") as f:
            f.write(f"{chapter.parent.name}-{chapter.name}-9998 TOO SHORT\n")
    return target


def test_every_utterance_of_a_chapter_is_used(tmp_path):
    folder = small_openslr(tmp_path, chapters=1)
    listed = sum(1 for t in folder.rglob("*.trans.txt") for line in t.read_text().splitlines() if line.strip())
    dataset = pdata.load_openslr([str(folder)], cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == listed > 1
    assert set(dataset.column_names) == set(pdata.COLUMNS)


def test_an_edited_transcript_is_read_again(tmp_path):
    folder = small_openslr(tmp_path, chapters=1)
    cache = str(tmp_path / "cache")
    first = pdata.load_openslr([str(folder)], cache_dir=cache)
    transcript = next(folder.rglob("*.trans.txt"))
    uid, _, text = transcript.read_text().splitlines()[0].partition(" ")
    edited = "X" * len(text)  # same size: only the modification time tells the files apart
    stat = transcript.stat()
    transcript.write_text(transcript.read_text().replace(text, edited, 1))
    os.utime(transcript, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    again = pdata.load_openslr([str(folder)], cache_dir=cache)
    assert again[first["id"].index(uid)]["text"] == edited != text
    assert again._fingerprint != first._fingerprint


def test_skipped_utterances_are_counted_not_fatal(tmp_path):
    folder = small_openslr(tmp_path, corrupt=True)
    dataset = pdata.load_openslr([str(folder)], cache_dir=str(tmp_path / "cache"))
    kept, counts = pdata.filter_utterances(dataset, 0.5, 20.0, None, "train")
    # 9999 has no audio and an empty transcript: the missing audio is what is counted.
    assert counts["skipped"] == {"missing_audio": 2, "too_short": 1, "unreadable": 1}
    assert counts["kept"] == len(kept) == counts["total"] - 4
    _, strict = pdata.filter_utterances(dataset, 0.5, 1.0, None, "train")
    assert strict["skipped"]["too_long"] > 0


def test_a_missing_transcript_counts_as_empty(tmp_path):
    flac = str(next(small_openslr(tmp_path, chapters=1).rglob("*.flac")))
    probed = pdata._probe({"audio": [flac, flac], "text": [None, "A SENTENCE"]}, 0.5, 20.0, None)
    assert probed["skip_reason"] == ["empty_text", ""]


def test_resampling_and_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(22050).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.flac", wave, 22050)
    decoded = pdata.decode_audio(str(tmp_path / "a.flac"))
    assert abs(len(decoded) - 16000) <= 1
    from transformers import Wav2Vec2FeatureExtractor

    expected = Wav2Vec2FeatureExtractor(do_normalize=True)(decoded, sampling_rate=16000).input_values[0]
    np.testing.assert_allclose(pdata.normalize(decoded), expected, atol=1e-5)
    # Hub-style {'bytes', 'path'} dicts decode the same way.
    blob = {"bytes": (tmp_path / "a.flac").read_bytes(), "path": "a.flac"}
    np.testing.assert_array_equal(pdata.decode_audio(blob), decoded)


def test_batches_pad_to_few_lengths_and_keep_every_sample():
    """The audio collator pads a batch to the next length of a 5% geometric ladder (few shapes for oneDNN to compile),
    never less than its longest wave and at most 5% + one frame more; the mask still marks each wave's own samples,
    and ratio 0 pads exactly."""
    lengths = range(8_000, 320_000, 37)
    padded = [pdata.bucketed_length(n, 0.05, pdata.AUDIO_BUCKET_QUANTUM) for n in lengths]
    assert all(n <= p <= 1.05 * n + pdata.AUDIO_BUCKET_QUANTUM for n, p in zip(lengths, padded))
    assert len(set(padded)) < 80  # 0.5-20 s of audio
    assert pdata.bucketed_length(12_345, 0.0) == 12_345
    waves = [np.ones(n, dtype=np.float32) for n in (16_000, 9_000)]
    examples = [{"audio": w, "id": str(i), "target_cls": [0.0]} for i, w in enumerate(waves)]
    with mock.patch.object(pdata, "decode_audio", lambda audio: audio):
        batch = pdata.AudioCollator("target_cls", normalize_audio=False)(examples)
        exact = pdata.AudioCollator("target_cls", normalize_audio=False, bucket_ratio=0.0)(examples)
    assert batch["input_values"].shape[1] == pdata.bucketed_length(16_000, 0.05, 320) > 16_000
    assert batch["attention_mask"].sum(1).tolist() == [16_000, 9_000] and exact["input_values"].shape[1] == 16_000
    assert batch["input_values"][:, 16_000:].abs().sum() == 0


def test_local_parquet_copy_with_hub_schema(tmp_path):
    folder = small_openslr(tmp_path, chapters=1)
    rows = list(pdata._openslr_rows([str(folder)]))
    splits = {}
    for i, name in enumerate(["train.clean.100", "train.clean.360"]):
        part = rows[i::2]
        splits[name] = datasets.Dataset.from_dict({
            "file": [r["audio"] for r in part],
            "audio": [{"bytes": Path(r["audio"]).read_bytes(), "path": Path(r["audio"]).name} for r in part],
            "text": [r["text"] for r in part], "speaker_id": [r["speaker_id"] for r in part],
            "chapter_id": [r["chapter_id"] for r in part], "id": [r["id"] for r in part],
        }).cast_column("audio", datasets.Audio(sampling_rate=16000, decode=False))
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "hub_copy")
    loaded = pdata.load_hub(str(tmp_path / "hub_copy"), "all", "train.clean.100+train.clean.360")
    assert len(loaded) == len(rows) and loaded.column_names == pdata.COLUMNS
    kept, counts = pdata.filter_utterances(loaded, 0.5, 20.0, None, "train")
    assert counts["skipped"] == {}
    batch = pdata.AudioCollator("target_cls")([{**kept[0], "target_cls": [0.0, 1.0]}])
    assert batch["input_values"].shape[0] == 1 and batch["attention_mask"].sum() == kept[0]["num_samples"]


def test_teacher_targets_are_cached_and_masked(tmp_path, monkeypatch):
    folder = small_openslr(tmp_path, chapters=1)
    dataset = pdata.load_openslr([str(folder)], cache_dir=str(tmp_path / "cache"))
    teacher = str(pdata.default_teacher_dir())
    calls = []
    original = pdata.TeacherEncoder.__call__
    monkeypatch.setattr(pdata.TeacherEncoder, "__call__", lambda self, texts: calls.append(1) or original(self, texts))
    first = pdata.add_teacher_targets(dataset, teacher)
    assert calls and len(first["target_cls"][0]) == 384
    calls.clear()
    again = pdata.add_teacher_targets(pdata.load_openslr([str(folder)], cache_dir=str(tmp_path / "cache")), teacher)
    assert calls == []  # the cache answered
    np.testing.assert_array_equal(np.asarray(again["target_mean"]), np.asarray(first["target_mean"]))
    assert not np.allclose(first["target_cls"][0], first["target_mean"][0])
    # The mean target ignores padding: a text alone and padded inside a batch give the same vector.
    encoder = pdata.TeacherEncoder(teacher)
    alone = encoder(["the sheep slept"])["target_mean"]
    padded = encoder(["the sheep slept", "a much longer sentence about a ship that sailed across the sea"])["target_mean"][:1]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def fake_teacher(folder: Path, weights: bytes) -> Path:
    """The tiny teacher's configuration and vocabulary with stand-in weights (the identity never loads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(pdata.default_teacher_dir() / name, folder / name)
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_a_retrained_teacher_of_the_same_size_gets_a_new_identity(tmp_path):
    teacher = fake_teacher(tmp_path / "teacher", b"a" * 64)
    first = pdata._teacher_identity(str(teacher))
    assert pdata._teacher_identity(str(teacher)) == first
    weights = teacher / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(b"b" * 64)  # retrained and saved again: same name, same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert pdata._teacher_identity(str(teacher)) != first


def test_a_hub_teacher_is_identified_by_its_snapshot_commit(tmp_path, monkeypatch):
    """Two commits give two identities; the weights arriving in the cache after the key was made (the first run
    downloads them while computing targets) do not change it, so the second run reuses the targets."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--teacher"
    unresolved = pdata._teacher_identity("org/teacher")
    identities = []
    for commit in ("1" * 40, "2" * 40):  # the same configuration at two commits
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        shutil.copy(pdata.default_teacher_dir() / "config.json", snapshot / "config.json")
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        before_download = pdata._teacher_identity("org/teacher")
        fake_teacher(snapshot, b"a" * 64)  # tokenizer and weights arrive
        assert pdata._teacher_identity("org/teacher") == before_download
        identities.append(before_download)
    assert len({unresolved, *identities}) == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_teacher_on_the_accelerator_gives_the_cpu_targets():
    texts = ["the sheep slept", "a ship sailed across the sea"]
    teacher = str(pdata.default_teacher_dir())
    on_gpu = pdata.TeacherEncoder(teacher, device="cuda")
    assert next(on_gpu.model.parameters()).device.type == "cuda"
    expected, got = pdata.TeacherEncoder(teacher)(texts), on_gpu(texts)
    for key in ("target_cls", "target_mean"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4)


def test_length_grouped_sampler_is_deterministic_per_epoch():
    lengths = np.arange(100) * 7 % 31
    sampler = pdata.LengthGroupedBatchSampler(lengths, 8, seed=3, group_batches=2)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(100))
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


@pytest.mark.parametrize(("num_utterances", "batch_size", "num_processes"), [(11, 4, 2), (260, 8, 2), (70, 16, 3)])
def test_length_grouped_batches_survive_sharding_over_processes(num_utterances, batch_size, num_processes):
    """accelerate's batch-sampler shards skip a round that ends in a short batch unless it is the last round: every
    utterance must still be seen each epoch, and each shard must yield as many batches as its length says."""
    from accelerate.data_loader import BatchSamplerShard

    lengths = np.random.default_rng(0).integers(1000, 5000, num_utterances)
    for epoch in range(3):
        sampler = pdata.LengthGroupedBatchSampler(lengths, batch_size, seed=0)
        sampler.set_epoch(epoch)
        seen = set()
        for process in range(num_processes):
            shard = BatchSamplerShard(sampler, num_processes=num_processes, process_index=process, even_batches=True)
            batches = list(shard)
            assert len(batches) == len(shard)
            seen.update(i for batch in batches for i in batch)
        assert seen == set(range(num_utterances))


def run_args(tmp_path, output, *extra):
    return [
        "--preset", "tiny", "--data_dir", str(small_openslr(tmp_path) if not (tmp_path / "LibriSpeech").exists() else tmp_path / "LibriSpeech" / "train-clean-100"),
        "--eval_data_dir", str(CORPUS / "dev-clean"), "--max_eval_samples", "8", "--train_eval_samples", "8",
        "--per_device_train_batch_size", "4", "--output_dir", str(output), "--cache_dir", str(tmp_path / "cache"),
        "--report_to", "none", "--seed", "7", "--mixed_precision", "no", *extra,  # not the timing probe's choice
    ]


def test_pretraining_script_end_to_end(tmp_path):
    output = tmp_path / "wav2sem-m"
    pretrain_main(run_args(tmp_path, output, "--variant", "m", "--max_train_steps", "4", "--eval_steps", "2"))
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, Wav2SemModel) and model.config.target == "mean" and model.config.text_embed_dim == 384
    assert model.config.teacher_name_or_path == "sentence-transformers/all-MiniLM-L6-v2"  # loadable
    assert (output / "model.safetensors").is_file() and (output / "preprocessor_config.json").is_file()
    card = (output / "README.md").read_text()
    assert "model-index" in card and "Audio-to-text R@1" in card and "lowercased" in card and "offline copy" in card
    # Local folders are named as such, never as the Hub dataset, and no local path lands in the metadata.
    metadata = ModelCard.load(output / "README.md").data
    assert metadata.datasets is None and "openslr/librispeech_asr" not in card and str(tmp_path) not in card
    assert metadata.eval_results[0].dataset_name == "local LibriSpeech-format folders: train-clean-100"
    report = json.loads((output / "data_report.json").read_text())
    assert report["splits"]["train"]["kept"] > 0
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert "l1_standardized" in train[0] and "l1" not in train[0]  # the eval's l1 is in the teacher's space
    evals = [r for r in records if "eval/r@1" in r]
    assert len(evals) == 2 and "eval/mean_target_l1" in evals[0] and "train_sample/chance_r@1" in evals[0]


def test_pretraining_on_a_frozen_whisper_front_end(tmp_path):
    from conftest import TINY_WHISPER
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(0)
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(tmp_path / "whisper")
    front_end = AutoModel.from_pretrained(tmp_path / "whisper").encoder
    output = tmp_path / "wav2sem-frontend"
    seen = []
    real_forward = Wav2SemModel.forward

    def spy(self, input_values, *args, **kwargs):
        seen.append(float(input_values.abs().max()))
        return real_forward(self, input_values, *args, **kwargs)

    with mock.patch.object(Wav2SemModel, "forward", spy):
        pretrain_main(run_args(tmp_path, output, "--max_train_steps", "2", "--front_end", str(tmp_path / "whisper"),
                               "--front_end_audio_context", "utterance", "--train_eval_samples", "0"))
    assert max(seen) <= 1.0  # the raw waveform (per-utterance normalisation would give peaks of several units)
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, Wav2SemModel) and model.feature_extractor is None
    assert model.config.front_end_config.audio_context == "utterance"
    for name, tensor in front_end.state_dict().items():  # frozen: the pre-trained weights, saved with the model
        torch.testing.assert_close(model.front_end.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert not any(p.requires_grad for p in model.front_end.parameters())


def test_cached_front_end_frames_train_as_the_audio_does_and_are_computed_once(tmp_path):
    from conftest import TINY_WHISPER
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(0)
    WhisperModel(WhisperConfig(**TINY_WHISPER)).save_pretrained(tmp_path / "whisper")
    front = ["--front_end", str(tmp_path / "whisper"), "--front_end_audio_context", "utterance",
             "--max_train_steps", "3", "--infonce_weight", "0.5"]
    pretrain_main(run_args(tmp_path, tmp_path / "audio", *front))
    calls = []
    real = Wav2SemModel.front_end_frames

    def spy(self, *args, **kwargs):
        calls.append(args[0].shape[0])
        return real(self, *args, **kwargs)

    with mock.patch.object(Wav2SemModel, "front_end_frames", spy):
        pretrain_main(run_args(tmp_path, tmp_path / "cached", *front, "--cache_front_end_frames"))
        computed = sum(calls)
        pretrain_main(run_args(tmp_path, tmp_path / "cached-again", *front, "--cache_front_end_frames"))
    assert computed == len(pdata.load_openslr([str(tmp_path / "LibriSpeech" / "train-clean-100")])) + 8 + 8  # once each
    assert sum(calls) == computed  # the second run read the cache: the front end never ran
    audio, cached = losses_by_step(tmp_path / "audio" / "metrics.jsonl"), losses_by_step(tmp_path / "cached" / "metrics.jsonl")
    assert sorted(audio) == sorted(cached) == [1, 2, 3]
    for step in audio:  # the same training, up to float16 rounding of the cached frames
        assert abs(audio[step] - cached[step]) <= 1e-3 * abs(audio[step]), (step, audio[step], cached[step])
    model = AutoModel.from_pretrained(tmp_path / "cached")
    assert isinstance(model, Wav2SemModel) and model.front_end is not None  # a whole model: it takes audio again
    with pytest.raises(ValueError, match="none was given"):
        pretrain_parse_args(["--cache_front_end_frames"])


def test_training_sample_evaluation_can_be_turned_off(tmp_path):
    output = tmp_path / "no-train-sample"
    pretrain_main(run_args(tmp_path, output, "--max_train_steps", "1", "--train_eval_samples", "0"))
    summary = json.loads((output / "training_summary.json").read_text())
    assert set(summary["final_eval"]) == {"eval"}


def test_hub_token_is_never_written_or_uploaded(tmp_path):
    from huggingface_hub.utils import filter_repo_objects

    from training.common import hub

    output = tmp_path / "pushed"
    push = ["--push_to_hub", "--hub_model_id", "org/m", "--hub_token", "hf_SECRET", "--report_to", "tensorboard"]
    with mock.patch.object(hub, "HfApi") as api_class:
        pretrain_main(run_args(tmp_path, output, "--max_train_steps", "2", "--checkpointing_steps", "2", *push))
    files = [p for p in output.rglob("*") if p.is_file()]
    assert any(p.relative_to(output).parts[0] == "wav2sem-pretrain" for p in files)  # TensorBoard wrote its logs
    assert [p for p in files if b"hf_SECRET" in p.read_bytes()] == []
    ignore = api_class.return_value.upload_folder.call_args.kwargs["ignore_patterns"]
    uploaded = set(filter_repo_objects([str(p.relative_to(output)) for p in files], ignore_patterns=ignore))
    assert {"model.safetensors", "README.md", "training_summary.json", "metrics.jsonl"} <= uploaded
    assert not [p for p in uploaded if p.startswith(("wav2sem-pretrain/", "checkpoints/"))]


def training_steps(path: Path) -> list[int]:
    return [record["step"] for line in path.read_text().splitlines() if "loss" in (record := json.loads(line))]


def losses_by_step(path: Path) -> dict[int, float]:
    losses = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]
    return losses


def test_resume_drops_the_metrics_logged_after_the_checkpoint(tmp_path):
    from training.pretrain import JsonLinesLogger

    log = JsonLinesLogger(tmp_path / "metrics.jsonl", enabled=True)
    for step in range(1, 7):
        log.log({"step": step, "loss": 1.0 / step})
    log.log({"step": 4, "eval/l1": 0.5})
    with open(log.path, "a") as f:
        f.write('{"step": 7, "lo')  # cut short by the kill
    log.drop_after(4)
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 4] and "eval/l1" in records[-1]


def test_sigkill_and_resume_logs_the_same_losses(tmp_path):
    steps = ["--max_train_steps", "10", "--checkpointing_steps", "4", "--eval_steps", "0"]
    script = [sys.executable, str(REPO / "training" / "pretrain.py")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    reference = tmp_path / "reference"
    args = run_args(tmp_path, reference, *steps)
    subprocess.run(script + args, check=True, env=env, capture_output=True, timeout=600)

    crashed = tmp_path / "crashed"
    args = run_args(tmp_path, crashed, *steps)
    process = subprocess.Popen(script + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300

    def logged_past_checkpoint():  # the killed run's log then holds steps the resumed run logs again
        metrics = crashed / "metrics.jsonl"
        return (crashed / "checkpoints" / "checkpoint-4").is_dir() and max(training_steps(metrics), default=0) > 4

    while not logged_past_checkpoint() and time.time() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (crashed / "model.safetensors").exists()
    subprocess.run(script + args + ["--resume_from_checkpoint", "latest"], check=True, env=env, capture_output=True, timeout=600)

    expected, resumed = losses_by_step(reference / "metrics.jsonl"), losses_by_step(crashed / "metrics.jsonl")
    assert training_steps(crashed / "metrics.jsonl") == list(range(1, 11))  # each step once
    for step in range(5, 11):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-6), step


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_processes_train_and_exit(tmp_path):
    """The README's CPU invocation: `accelerate launch --multi_gpu --num_processes 2 ... --cpu` starts two gloo ranks
    that share the data, evaluate every utterance once, save, and exit (a hang at teardown fails by timeout)."""
    output = tmp_path / "two-processes"
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--main_process_port", str(free_port()), str(REPO / "training" / "pretrain.py"), "--cpu",
    ]
    args = run_args(tmp_path, output, "--max_train_steps", "2", "--eval_steps", "0")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(launch + args, check=True, env=env, capture_output=True, timeout=300)
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 2
    assert summary["final_eval"]["eval"]["num_utterances"] == 8  # --max_eval_samples 8, gathered without duplicates
    assert isinstance(AutoModel.from_pretrained(output), Wav2SemModel)
