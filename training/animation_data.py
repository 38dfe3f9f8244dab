"""VOCASET and BIWI in their processed layouts (FaceFormer's), as torch datasets for animation training.

    DATA_DIR/wav/<name>.wav                 speech (any rate: decoded with soundfile, resampled to 16 kHz with soxr)
    DATA_DIR/vertices_npy/<name>.npy        (T, V*3) float vertices (VOCASET 60 fps, BIWI 25 fps)
    DATA_DIR/templates.pkl                  {subject: (V, 3)} neutral meshes (pickled with latin1 encoding)
    DATA_DIR/regions/lip_vertices.txt       optional: lip / upper-face vertex indices for LVE / FDD
    DATA_DIR/regions/upper_face_vertices.txt

Names are `<subject>_sentenceNN` (VOCASET) or `<subject>_eNN` (BIWI). The standard splits pick sequences by subject
and sentence number (see `LAYOUTS`); VOCASET vertices are downsampled from 60 to 30 fps as FaceFormer does. The
synthetic lip dataset of `training.make_sample_faces` has the same layout, so it loads the same way.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modeling_wav2sem.metrics import read_region_file

from .faces.datasets import BIWI_SENTENCES, BIWI_SPLIT_SUBJECTS, VOCASET_SENTENCES, VOCASET_SUBJECTS
from .pretraining_data import SAMPLING_RATE, decode_audio, normalize

SPLITS = ("train", "val", "test")
LIP_REGION_FILES = ("regions/lip_vertices.txt", "lip_vertices.txt", "regions/mouth_vertices.txt")
UPPER_REGION_FILES = ("regions/upper_face_vertices.txt", "upper_face_vertices.txt", "regions/FDD_upper_face.txt")


@dataclass(frozen=True)
class AnimationLayout:
    """A processed dataset layout: file naming, standard splits, frame-rate handling and the metric scales."""

    name: str
    name_pattern: str  # regex with groups `subject` and `sentence`
    subjects: dict  # split -> subjects
    sentences: dict  # split -> range of sentence numbers
    vertex_stride: int  # keep every n-th stored frame (VOCASET: 60 -> 30 fps)
    lve_scale: float  # LVE/MVE are reported divided by this (x1e-5 VOCASET, x1e-4 BIWI)
    fdd_scale: float

    def parse(self, stem: str) -> tuple[str, int] | None:
        match = re.fullmatch(self.name_pattern, stem)
        return (match["subject"], int(match["sentence"])) if match else None

    def split_of(self, subject: str, sentence: int) -> list[str]:
        """Every standard split the sequence belongs to (VOCASET's val/test subjects share sentences 21-40)."""
        return [s for s in SPLITS if subject in self.subjects[s] and sentence in self.sentences[s]]


LAYOUTS = {
    "vocaset": AnimationLayout(
        name="vocaset",
        name_pattern=r"(?P<subject>.+)_sentence(?P<sentence>\d+)",
        subjects={split: list(VOCASET_SUBJECTS[split]) for split in SPLITS},
        sentences=dict(VOCASET_SENTENCES),
        vertex_stride=2,
        lve_scale=1e-5,
        fdd_scale=1e-5,
    ),
    "biwi": AnimationLayout(
        name="biwi",
        name_pattern=r"(?P<subject>.+)_e(?P<sentence>\d+)",
        subjects={split: list(BIWI_SPLIT_SUBJECTS) for split in SPLITS},
        sentences=dict(BIWI_SENTENCES),
        vertex_stride=1,
        lve_scale=1e-4,
        fdd_scale=1e-5,
    ),
}


def get_layout(name: str) -> AnimationLayout:
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(LAYOUTS)}.") from None


def default_animation_dir() -> Path:
    """The embedded synthetic VOCASET-format sample (`training/sample_data/vocaset`)."""
    return Path(__file__).resolve().parent / "sample_data" / "vocaset"


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
class Sequence:
    name: str
    subject: str
    sentence: int
    wav: Path
    vertices: Path


class AnimationDataset(torch.utils.data.Dataset):
    """One split of a processed VOCASET/BIWI folder. Items are dicts with `name`, `subject`, `input_values` (L,)
    normalised 16 kHz audio, `labels` (T, V*3) vertices at the model's frame rate, `template` (V*3,) and
    `subject_index` (the speaker's index in `train_subjects`, -1 for a speaker unseen in training).

    Vertex files are read when an item is requested (memory-mapped), so a full VOCASET needs no gigabytes of RAM.
    Sequences with a missing wav or npy file are skipped and listed in `skipped`.
    """

    def __init__(
        self,
        data_dir: str | Path,
        dataset: str = "vocaset",
        split: str = "train",
        train_subjects: list[str] | None = None,
        subjects: list[str] | None = None,
        normalize_audio: bool = True,
        max_sequences: int | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        self.data_dir = Path(data_dir)
        self.layout = get_layout(dataset)
        self.split = split
        self.normalize_audio = normalize_audio
        wav_dir, npy_dir = self.data_dir / "wav", self.data_dir / "vertices_npy"
        for folder in (wav_dir, npy_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"{self.data_dir} is not a processed {dataset} folder: no {folder.name}/.")
        self.templates = load_templates(self.data_dir)
        self.train_subjects = list(train_subjects or self.layout.subjects["train"])
        wanted = set(subjects or self.layout.subjects[split])

        self.sequences: list[Sequence] = []
        self.skipped: dict[str, list[str]] = {"missing audio": [], "missing template": []}
        for npy in sorted(npy_dir.glob("*.npy")):
            parsed = self.layout.parse(npy.stem)
            if parsed is None:
                continue
            subject, sentence = parsed
            if subject not in wanted or split not in self.layout.split_of(subject, sentence):
                continue
            wav = wav_dir / f"{npy.stem}.wav"
            if not wav.is_file():
                self.skipped["missing audio"].append(npy.stem)
            elif subject not in self.templates:
                self.skipped["missing template"].append(npy.stem)
            else:
                self.sequences.append(Sequence(npy.stem, subject, sentence, wav, npy))
        if max_sequences is not None:
            self.sequences = self.sequences[:max_sequences]
        if not self.sequences:
            raise ValueError(f"No {split} sequences of {dataset} in {self.data_dir} (subjects {sorted(wanted)}).")

    def __len__(self) -> int:
        return len(self.sequences)

    def subject_index(self, subject: str) -> int:
        return self.train_subjects.index(subject) if subject in self.train_subjects else -1

    def __getitem__(self, index: int) -> dict:
        sequence = self.sequences[index]
        audio = decode_audio(str(sequence.wav), SAMPLING_RATE)
        if self.normalize_audio:
            audio = normalize(audio)
        vertices = np.load(sequence.vertices, mmap_mode="r")[:: self.layout.vertex_stride]
        return {
            "name": sequence.name,
            "subject": sequence.subject,
            "input_values": audio.astype(np.float32),
            "labels": np.array(vertices, dtype=np.float32).reshape(len(vertices), -1),
            "template": self.templates[sequence.subject],
            "subject_index": self.subject_index(sequence.subject),
        }


def collate_animation(examples: list[dict]) -> dict:
    """Right-pad a list of items: `input_values`/`attention_mask` (B, L), `labels`/`vertex_mask` (B, T), `template`
    (B, V*3), `subject_index` (B,), plus the `names` and `subjects`. Masks are left out when nothing is padded."""
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
