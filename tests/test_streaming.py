"""Pretraining with --streaming on a local Parquet copy of the Hub's LibriSpeech layout: skip counts, the step budget,
length bucketing of a stream, and resuming by re-reading the stream."""

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import ModelCard
from transformers import AutoModel

from modeling_wav2sem import Wav2SemModel
from test_pretrain import CORPUS, losses_by_step, small_openslr
from training import pretraining_data as pdata
from training.pretrain import main as pretrain_main
from training.pretrain import parse_args

TRAIN_SPLITS = "train.clean.100+train.clean.360"


@pytest.fixture(autouse=True)
def no_pause_after_each_pass(monkeypatch):
    # `datasets` sleeps 5 s whenever it finishes (or abandons) a pass over a shuffled Parquet stream, to let pyarrow's
    # reader threads wind down (apache/arrow#45214): nothing for 960 h, most of the time of these tiny runs.
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


def write_split(rows: list[dict], path: Path):
    """One Parquet file with the Hub schema (audio {'bytes', 'path'}, not decoded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({
        "file": [r["path"] for r in rows],
        "audio": [{"bytes": r["bytes"], "path": r["path"]} for r in rows],
        "text": [r["text"] for r in rows], "speaker_id": [r["speaker_id"] for r in rows],
        "chapter_id": [r["chapter_id"] for r in rows], "id": [r["id"] for r in rows],
    }).cast_column("audio", datasets.Audio(sampling_rate=16000, decode=False)).to_parquet(str(path))


def hub_copy(tmp_path: Path) -> Path:
    """A local copy laid out as openslr/librispeech_asr on the Hub: `all/<split>/*.parquet` and a README whose YAML
    maps the `all` config's splits to them. train.clean.100 holds one unreadable file and one empty transcript."""
    root = tmp_path / "librispeech_asr"
    if root.is_dir():
        return root

    def rows(folder, limit=None):
        listed = list(pdata._openslr_rows([str(folder)]))[:limit]
        return [{**r, "bytes": Path(r["audio"]).read_bytes(), "path": Path(r["audio"]).name} for r in listed]

    train = rows(small_openslr(tmp_path, chapters=2))
    broken = [
        {**train[0], "id": "broken-unreadable", "bytes": os.urandom(3000), "path": "broken.flac"},
        {**train[1], "id": "broken-empty-text", "text": ""},
    ]
    write_split(train[0::2] + broken, root / "all" / "train.clean.100" / "0000.parquet")
    write_split(train[1::2], root / "all" / "train.clean.360" / "0000.parquet")
    write_split(rows(CORPUS / "dev-clean", 8), root / "all" / "validation.clean" / "0000.parquet")
    splits = "".join(
        f"  - split: {split}\n    path: all/{split}/*.parquet\n"
        for split in ("train.clean.100", "train.clean.360", "validation.clean")
    )
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: all\n  data_files:\n{splits}---\n")
    return root


def stream_args(tmp_path: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--preset", "tiny", "--dataset_name", str(hub_copy(tmp_path)), "--dataset_config", "all",
        "--train_split", TRAIN_SPLITS, "--eval_split", "validation.clean", "--streaming",
        "--max_eval_samples", "8", "--train_eval_samples", "8", "--per_device_train_batch_size", "4",
        "--crop_seconds", "0.5", "--eval_steps", "0", "--report_to", "none", "--seed", "7", "--mixed_precision", "no",
        "--output_dir", str(output), "--cache_dir", str(tmp_path / "cache"), *extra,
    ]


def test_bucketing_yields_every_utterance_of_a_pass_once():
    rng = np.random.default_rng(0)
    examples = [{"id": f"u{i}", "num_samples": int(n)} for i, n in enumerate(rng.integers(400, 90000, 103))]
    batches = list(pdata.bucket_by_length(iter(examples), 4, 3, np.random.default_rng(1)))
    ids = [e["id"] for batch in batches for e in batch]
    assert sorted(ids) == sorted(e["id"] for e in examples) and len(ids) == len(set(ids))
    assert all(1 <= len(batch) <= 4 for batch in batches)
    # Each buffer of 12 gives 3 consecutive batches, cut from it sorted by length: their lengths do not interleave.
    for k in range(8):
        group = batches[3 * k : 3 * k + 3]
        assert {e["id"] for b in group for e in b} == {e["id"] for e in examples[12 * k : 12 * k + 12]}
        lengths = sorted(([e["num_samples"] for e in b] for b in group), key=max, reverse=True)
        assert all(min(a) >= max(b) for a, b in zip(lengths, lengths[1:]))
    assert list(pdata.bucket_by_length(iter(examples), 4, 3, np.random.default_rng(1))) == batches


def test_bucketed_stream_repeats_reshuffled_and_skips_for_resume():
    lengths = np.random.default_rng(0).integers(400, 90000, 23)
    stream = datasets.Dataset.from_dict({"id": [f"u{i}" for i in range(23)], "num_samples": lengths.tolist()})
    stream = stream.to_iterable_dataset().shuffle(seed=5, buffer_size=8)
    passes = []
    full = pdata.LengthBucketedStream(stream, 4, seed=3, buffer_batches=2, on_pass_end=passes.append)
    iterator = iter(full)
    first = [[e["id"] for e in next(iterator)] for _ in range(20)]  # 6 batches per pass: into the 4th pass
    assert passes == [0, 1, 2] and full.epoch == 3
    one_pass = [i for batch in first[:6] for i in batch]
    assert sorted(one_pass) == sorted(f"u{i}" for i in range(23))
    assert first[6:12] != first[:6]  # the next pass is reshuffled
    resumed = iter(pdata.LengthBucketedStream(stream, 4, seed=3, buffer_batches=2, skip_batches=8))
    assert [[e["id"] for e in next(resumed)] for _ in range(12)] == first[8:]


class ZeroTeacher:
    """Stands in for `TeacherEncoder` where the targets' values do not matter."""

    batch_size = 64

    def __call__(self, texts):
        zeros = np.zeros((len(texts), 2), np.float32)
        return {"target_cls": zeros, "target_mean": zeros}


@pytest.mark.parametrize("world_size", [2, 3])  # 2 shards: whole files per process; 3: every third utterance
def test_processes_read_disjoint_parts_of_the_stream(tmp_path, world_size):
    stream = pdata.load_hub(str(hub_copy(tmp_path)), "all", TRAIN_SPLITS, streaming=True).shuffle(seed=1, buffer_size=8)
    assert stream.n_shards == 2
    parts, counts = [], Counter()
    for rank in range(world_size):  # one TrainStream per process, as each process builds its own
        train = pdata.TrainStream(stream, ZeroTeacher(), 0.5, 20.0, None)
        parts.append([e["id"] for e in train.pipeline(rank, world_size)])
        counts += train.counts
    ids = [i for part in parts for i in part]
    assert len(ids) == len(set(ids)) == 11 and all(parts)
    assert counts == Counter({"": 11, "empty_text": 1, "unreadable": 1})


def test_a_save_to_disk_copy_streams_too(tmp_path):
    root = hub_copy(tmp_path)
    splits = {
        split: datasets.Dataset.from_parquet(str(root / "all" / split / "0000.parquet"), cache_dir=str(tmp_path / "c"))
        for split in TRAIN_SPLITS.split("+")
    }
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))
    stream = pdata.load_hub(str(tmp_path / "saved"), None, TRAIN_SPLITS, streaming=True)
    rows = list(stream)
    assert [r["id"] for r in rows] == pdata.load_hub(str(tmp_path / "saved"), None, TRAIN_SPLITS)["id"]
    assert list(rows[0]) == pdata.COLUMNS and rows[0]["audio"]["bytes"]


def test_streaming_needs_a_step_budget():
    with pytest.raises(ValueError, match="--streaming needs --max_train_steps"):
        parse_args(["--dataset_name", "openslr/librispeech_asr", "--streaming"])
    with pytest.raises(ValueError, match="counts epochs"):
        parse_args(["--dataset_name", "x", "--streaming", "--recipe", "paper", "--max_train_steps", "5"])
    args = parse_args(["--streaming", "--max_train_steps", "5"])
    with pytest.raises(ValueError, match="--streaming reads --dataset_name"):
        pdata.build_pretraining_data(args, seed=0)


def test_streaming_run_counts_skips_and_saves_a_model(tmp_path):
    output = tmp_path / "wav2sem-stream"
    pretrain_main(stream_args(tmp_path, output, "--max_train_steps", "4"))
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, Wav2SemModel) and model.config.text_embed_dim == 384
    report = json.loads((output / "data_report.json").read_text())
    # 11 readable utterances + 2 broken; 3 batches (4, 4, 3) per pass, so step 4 is in the second pass: the counts
    # are those of the first (whole) pass, each utterance once.
    assert report["splits"]["train"] == {
        "total": 13, "kept": 11, "skipped": {"empty_text": 1, "unreadable": 1}, "whole_split": True
    }
    assert report["splits"]["eval"]["kept"] == 8
    assert report["skipped"] == {"empty_text": 1, "unreadable": 1}
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4] and [r["epoch"] for r in train] == [0, 0, 0, 1]
    assert train[-1]["lr"] < train[1]["lr"]  # the cosine schedule runs over --max_train_steps
    assert any("eval/r@1" in r for r in records)
    card = (output / "README.md").read_text()
    assert "11 streamed" in card and "local copy of the Hub's LibriSpeech layout: librispeech_asr" in card
    assert ModelCard.load(output / "README.md").data.datasets is None  # a local copy is not the Hub dataset


def test_streaming_without_a_training_sample_evaluation(tmp_path):
    output = tmp_path / "no-train-sample"
    pretrain_main(stream_args(tmp_path, output, "--max_train_steps", "1", "--train_eval_samples", "0"))
    summary = json.loads((output / "training_summary.json").read_text())
    assert set(summary["final_eval"]) == {"eval"}


def test_streaming_resume_logs_the_same_losses(tmp_path):
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "4"]
    reference = tmp_path / "reference"
    pretrain_main(stream_args(tmp_path, reference, *steps))
    # Resume from step 4 (in the second pass: the skipped batches cross a pass boundary) in a fresh output folder.
    resumed = tmp_path / "resumed"
    shutil.copytree(reference / "checkpoints" / "checkpoint-4", resumed / "checkpoints" / "checkpoint-4")
    pretrain_main(stream_args(tmp_path, resumed, *steps, "--resume_from_checkpoint", "latest"))

    expected, got = losses_by_step(reference / "metrics.jsonl"), losses_by_step(resumed / "metrics.jsonl")
    assert sorted(got) == [5, 6]
    for step in (5, 6):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    # Re-reading the stream counts its skips again, as the uninterrupted run did.
    report = [json.loads((folder / "data_report.json").read_text()) for folder in (reference, resumed)]
    assert report[0]["splits"]["train"] == report[1]["splits"]["train"]
