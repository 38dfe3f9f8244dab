"""VOCASET and BIWI in their processed layouts (FaceFormer's), as torch datasets for animation training.

    DATA_DIR/wav/<name>.wav                 speech (any rate: decoded with soundfile, resampled to 16 kHz with soxr)
    DATA_DIR/vertices_npy/<name>.npy        (T, V*3) float vertices at the capture rate (VOCASET 60 fps, BIWI 25 fps)
    DATA_DIR/templates.pkl                  {subject: (V, 3)} neutral meshes (pickled with latin1 encoding)
    DATA_DIR/regions/lip_vertices.txt       optional: lip / upper-face vertex indices for LVE / FDD
    DATA_DIR/regions/upper_face_vertices.txt

The dataset's facts (file naming, standard splits, capture rate, metric scales) come from `ANIMATION_DATASETS` in
`modeling_wav2sem.configuration_animation`, the one home the model configs and the synthetic generator use too.
Vertices are brought to the model's frame rate by a frame stride (VOCASET 60 -> 30 fps: every 2nd frame). The
synthetic lip datasets of `training.make_sample_faces` have the same layout, so they load the same way.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from modeling_wav2sem.configuration_animation import SPLITS, AnimationDatasetInfo, get_animation_dataset
from modeling_wav2sem.metrics import read_region_file
from ..common.audio import SAMPLING_RATE, decode_audio, normalize

LIP_REGION_FILES = ("regions/lip_vertices.txt", "lip_vertices.txt", "regions/mouth_vertices.txt")
UPPER_REGION_FILES = ("regions/upper_face_vertices.txt", "upper_face_vertices.txt", "regions/FDD_upper_face.txt")
# A sequence whose vertex frames outnumber what its audio accounts for by more than this (plus 2 frames) is skipped.
MAX_FRAMES_PER_AUDIO = 1.25


def default_animation_dir(dataset: str = "vocaset") -> Path:
    """The embedded synthetic sample in `dataset`'s layout (`training/sample_data/vocaset`, `.../biwi`)."""
    return Path(__file__).resolve().parents[1] / "sample_data" / dataset


def read_templates(path: str | Path) -> dict[str, np.ndarray]:
    """A `templates.pkl` file (pickled with latin1 encoding) as {subject: (V*3,) float32}."""
    with open(path, "rb") as handle:
        templates = pickle.load(handle, encoding="latin1")
    return {subject: np.asarray(mesh, dtype=np.float32).reshape(-1) for subject, mesh in templates.items()}


def load_templates(data_dir: str | Path) -> dict[str, np.ndarray]:
    """`DATA_DIR/templates.pkl` as {subject: (V*3,) float32}."""
    path = Path(data_dir) / "templates.pkl"
    if not path.is_file():
        raise FileNotFoundError(f"No templates.pkl in {data_dir}.")
    return read_templates(path)


def find_region_file(data_dir: str | Path, candidates: tuple[str, ...]) -> Path | None:
    for relative in candidates:
        path = Path(data_dir) / relative
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class SequenceFiles:
    name: str
    subject: str
    sentence: int
    wav: Path
    vertices: Path


class AnimationDataset(torch.utils.data.Dataset):
    """One split of a processed VOCASET/BIWI folder. Items are dicts with `name`, `subject`, `dataset`,
    `input_values` (L,) 16 kHz audio prepared as the encoder's feature extractor does (per-utterance normalisation
    without one), `labels` (T, V*3) vertices at `frame_rate`, `template` (V*3,) and `subject_index` (the speaker's
    index in `train_subjects`, -1 for a speaker unseen in training).

    `max_seconds` (default `None`: no truncation) cuts longer clips to that many seconds of audio and the frames they
    cover (UniTalker trains and evaluates on at most 20 s); the cut sequences are listed in `clipped`.

    Every sequence's files are checked when the split is built (headers only): sequences with a missing or unreadable
    wav or npy file, no template, a template or vertex file of another vertex count, or far more vertex frames than
    their audio accounts for are skipped, and listed by reason in `skipped` (the runner prints and saves them). Vertex
    files are read when an item is requested (memory-mapped), so a full VOCASET needs no gigabytes of RAM.
    """

    def __init__(
        self,
        data_dir: str | Path,
        dataset: str | AnimationDatasetInfo = "vocaset",
        split: str = "train",
        train_subjects: list[str] | None = None,
        subjects: list[str] | None = None,
        frame_rate: float | None = None,
        feature_extractor=None,
        max_sequences: int | None = None,
        max_seconds: float | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        self.data_dir = Path(data_dir)
        self.info = dataset if isinstance(dataset, AnimationDatasetInfo) else get_animation_dataset(dataset)
        self.split = split
        self.frame_rate = float(frame_rate or self.info.frame_rate)
        self.vertex_stride = self.info.vertex_stride(self.frame_rate)
        self.feature_extractor = feature_extractor
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0 (or None: no truncation), got {max_seconds}.")
        self.max_seconds = max_seconds
        self.clipped: list[str] = []
        wav_dir, npy_dir = self.data_dir / "wav", self.data_dir / "vertices_npy"
        for folder in (wav_dir, npy_dir):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{self.data_dir} is not a processed {self.info.display_name} folder: no {folder.name}/."
                )
        self.templates = load_templates(self.data_dir)
        self.train_subjects = list(train_subjects or self.info.train_subjects)
        wanted = set(subjects or self.info.split_subjects[split])
        vertice_dim = self.info.vertice_dim if self.info.num_vertices else None
        template_sizes = {s: t.size for s, t in self.templates.items()}
        self.vertice_dim = vertice_dim if vertice_dim in template_sizes.values() else next(iter(template_sizes.values()))

        self.sequences: list[SequenceFiles] = []
        self.skipped: dict[str, list[str]] = {}
        for npy in sorted(npy_dir.glob("*.npy")):
            parsed = self.info.parse(npy.stem)
            if parsed is None:
                continue
            subject, sentence = parsed
            if subject not in wanted or split not in self.info.splits_of(subject, sentence):
                continue
            files = SequenceFiles(npy.stem, subject, sentence, wav_dir / f"{npy.stem}.wav", npy)
            problem = self._check(files)
            if problem:
                self.skipped.setdefault(problem, []).append(npy.stem)
            else:
                self.sequences.append(files)
        if max_sequences is not None:
            self.sequences = self.sequences[:max_sequences]
        if max_seconds is not None:
            self.clipped = [s.name for s in self.sequences if sf.info(str(s.wav)).duration > max_seconds]
        if not self.sequences:
            raise ValueError(
                f"No usable {split} sequences of {self.info.display_name} in {self.data_dir} (subjects "
                f"{sorted(wanted)})" + (f"; skipped: {self.skipped_summary()}" if self.skipped else "") + "."
            )

    def _check(self, files: SequenceFiles) -> str | None:
        """Why a sequence cannot be used (a short reason), or `None`. Reads file headers only."""
        if not files.wav.is_file():
            return "missing audio"
        if files.subject not in self.templates:
            return "missing template"
        if self.templates[files.subject].size != self.vertice_dim:
            return "template vertex count differs"
        try:
            audio = sf.info(str(files.wav))
        except Exception:  # soundfile raises its own error types for unreadable files
            return "unreadable audio"
        try:
            vertices = np.load(files.vertices, mmap_mode="r")
        except Exception:
            return "unreadable vertices"
        if vertices.ndim != 2 or vertices.shape[1] != self.vertice_dim:
            return "vertex count differs"
        frames = len(range(0, vertices.shape[0], self.vertex_stride))
        audio_frames = audio.frames / audio.samplerate * self.frame_rate
        if frames == 0 or audio.frames == 0:
            return "empty sequence"
        if frames > MAX_FRAMES_PER_AUDIO * audio_frames + 2:
            return "vertices far longer than audio"
        return None

    def skipped_summary(self) -> str:
        return ", ".join(f"{reason}: {len(names)}" for reason, names in sorted(self.skipped.items())) or "none"

    def __len__(self) -> int:
        return len(self.sequences)

    def subject_index(self, subject: str) -> int:
        return self.train_subjects.index(subject) if subject in self.train_subjects else -1

    def prepare_audio(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz samples as the encoder's feature extractor prepares them (normalised when there is none)."""
        if self.feature_extractor is None:
            return normalize(audio)
        prepared = self.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="np")
        return np.asarray(prepared["input_values"][0], dtype=np.float32)

    def __getitem__(self, index: int) -> dict:
        sequence = self.sequences[index]
        audio = decode_audio(str(sequence.wav), SAMPLING_RATE)
        vertices = np.load(sequence.vertices, mmap_mode="r")[:: self.vertex_stride]
        if self.max_seconds is not None:  # cut before preparing: the encoder normalises the clip it sees
            audio = audio[: int(self.max_seconds * SAMPLING_RATE)]
            vertices = vertices[: int(self.max_seconds * self.frame_rate)]
        audio = self.prepare_audio(audio)
        return {
            "name": sequence.name,
            "subject": sequence.subject,
            "dataset": self.info.name,
            "input_values": audio.astype(np.float32),
            "labels": np.array(vertices, dtype=np.float32).reshape(len(vertices), -1),
            "template": self.templates[sequence.subject],
            "subject_index": self.subject_index(sequence.subject),
        }

    def lengths(self) -> list[int]:
        """Vertex frames per sequence (for length-grouped batching), from the file headers."""
        lengths = [
            len(range(0, np.load(s.vertices, mmap_mode="r").shape[0], self.vertex_stride)) for s in self.sequences
        ]
        if self.max_seconds is not None:
            lengths = [min(n, int(self.max_seconds * self.frame_rate)) for n in lengths]
        return lengths


class DatasetMixture(torch.utils.data.Dataset):
    """One split of several datasets in one run (UniTalker's mixture), each an `AnimationDataset` of its own mesh,
    frame rate and speakers: items of `parts[0]` first, then `parts[1]`, ...; each item names its `dataset`. Batch it
    with `DatasetGroupedBatchSampler`, which never puts two datasets in one batch."""

    def __init__(self, parts: dict[str, AnimationDataset]):
        if not parts:
            raise ValueError("A dataset mixture needs at least one dataset.")
        self.parts = dict(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts.values()])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return list(self.parts.values())[part][index - int(self.offsets[part])]

    def group_lengths(self) -> dict[str, list[int]]:
        """Vertex frames per sequence, per dataset (in `parts` order)."""
        return {name: part.lengths() for name, part in self.parts.items()}


def collate_animation(examples: list[dict]) -> dict:
    """Right-pad a list of items: `input_values`/`attention_mask` (B, L), `labels`/`vertex_mask` (B, T), `template`
    (B, V*3), `subject_index` (B,), plus the `names` and `subjects`. Masks are left out when nothing is padded."""
    sizes = {e["labels"].shape[-1] for e in examples}
    if len(sizes) > 1:
        raise ValueError(f"A batch mixes meshes of different vertex counts ({sorted(sizes)}); batch each dataset apart.")
    audio_lengths = [len(e["input_values"]) for e in examples]
    frame_lengths = [len(e["labels"]) for e in examples]
    batch = len(examples)
    values = torch.zeros(batch, max(audio_lengths))
    labels = torch.zeros(batch, max(frame_lengths), examples[0]["labels"].shape[-1])
    for i, example in enumerate(examples):
        values[i, : audio_lengths[i]] = torch.from_numpy(example["input_values"])
        labels[i, : frame_lengths[i]] = torch.from_numpy(example["labels"])
    output = {
        "input_values": values,
        "labels": labels,
        "template": torch.from_numpy(np.stack([e["template"] for e in examples])),
        "subject_index": torch.tensor([e["subject_index"] for e in examples]),
        "names": [e["name"] for e in examples],
        "subjects": [e["subject"] for e in examples],
        "datasets": [e.get("dataset") for e in examples],
    }
    if len(set(audio_lengths)) > 1:
        output["attention_mask"] = (torch.arange(values.shape[1])[None] < torch.tensor(audio_lengths)[:, None]).long()
    if len(set(frame_lengths)) > 1:
        output["vertex_mask"] = torch.arange(labels.shape[1])[None] < torch.tensor(frame_lengths)[:, None]
    return output


@dataclass
class Regions:
    """Lip and upper-face vertex indices for LVE and FDD (None when the folder has no region file)."""

    lip: np.ndarray | None
    upper_face: np.ndarray | None

    @classmethod
    def from_folder(cls, data_dir: str | Path, lip_file: str | None = None, upper_file: str | None = None) -> "Regions":
        lip = Path(lip_file) if lip_file else find_region_file(data_dir, LIP_REGION_FILES)
        upper = Path(upper_file) if upper_file else find_region_file(data_dir, UPPER_REGION_FILES)
        return cls(
            lip=read_region_file(lip) if lip else None,
            upper_face=read_region_file(upper) if upper else None,
        )
