# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""What every speech-driven 3D facial animation config of this package shares: the datasets' facts and the base config.

Read top to bottom:

1. `ANIMATION_DATASETS`: one home for the facts of each dataset (vertex count, capture and model frame rates, the
   standard splits, the training speakers in one-hot order, file naming, region files, metric scales). The model
   configs, the real-data reader and the synthetic-data generator all read them from here.
2. `AnimationConfig`: the base of every animation model's config. It holds the audio encoder sub-config (any
   wav2vec2-family `AutoConfig`, or a `wav2sem-fused` one), the mesh size, the vertex frame rate and the training
   speakers, and fills the fields a model leaves `None` from `presets[dataset]` (its own hyper-parameters per dataset)
   and from the dataset's facts, so `FaceFormerConfig.from_preset("biwi")` and `VOCAConfig.from_preset("vocaset")`
   work alike.

This file imports only `transformers` and its sibling configuration file, so that it doubles as Hub remote code.
"""

import copy
import math
import re
from dataclasses import dataclass, field

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_wav2sem import Wav2SemConfig, Wav2SemFusedConfig

# ----------------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class AnimationDatasetInfo:
    """The facts of one 4D speech dataset in its processed layout (`wav/<name>.wav`, `vertices_npy/<name>.npy`,
    `templates.pkl`), as the published baselines use it.

    Args:
        name: registry key (`"vocaset"`, `"biwi"`).
        display_name: the name papers use.
        num_vertices: V, vertices per mesh (`vertice_dim = 3 * V`).
        capture_fps: frame rate of the stored vertex files.
        frame_rate: the rate the published animation models work at (VOCASET 30: every 2nd captured frame).
        train_subjects: the training speakers, in the order of the style one-hot.
        split_subjects: split -> speakers whose sequences belong to it.
        split_sentences: split -> (first, last) sentence numbers (inclusive).
        all_subjects: every speaker of the dataset (the synthetic generator writes a template for each).
        sequence_format: the file stem of a sequence, formatted with `subject` and `sentence`.
        lip_region_file / upper_face_region_file: region files (relative to the data folder) for LVE / FDD.
        lve_scale / fdd_scale: LVE and MVE, and FDD, are reported divided by these (the papers' units).
        mesh_name: the mesh topology's name in UniTalker's annotation types (`"FLAME"` -> `FLAME_5023_vertices`).
        vertex_scale: the factor UniTalker multiplies this dataset's vertices and templates by, so that the datasets
            of a mixture share one range (its `dataset_config.py`: BIWI 0.2, VOCASET 1.0).
    """

    name: str
    display_name: str
    num_vertices: int
    capture_fps: float
    frame_rate: float
    train_subjects: tuple[str, ...]
    split_subjects: dict
    split_sentences: dict
    all_subjects: tuple[str, ...]
    sequence_format: str
    lip_region_file: str = "regions/lip_vertices.txt"
    upper_face_region_file: str = "regions/upper_face_vertices.txt"
    lve_scale: float = 1e-5
    fdd_scale: float = 1e-5
    mesh_name: str = ""
    vertex_scale: float = 1.0
    notes: str = field(default="", compare=False)

    @property
    def vertice_dim(self) -> int:
        return 3 * self.num_vertices

    @property
    def sequence_pattern(self) -> re.Pattern:
        """A regex matching `sequence_format` stems, with groups `subject` and `sentence`."""
        pattern = re.escape(self.sequence_format)
        pattern = pattern.replace(re.escape("{subject}"), r"(?P<subject>.+)")
        pattern = re.sub(r"\\\{sentence[^}]*\\\}", r"(?P<sentence>\\d+)", pattern)
        return re.compile(pattern)

    def sequence_name(self, subject: str, sentence: int) -> str:
        return self.sequence_format.format(subject=subject, sentence=sentence)

    def parse(self, stem: str) -> tuple[str, int] | None:
        """`(subject, sentence)` of a file stem, or `None` when the stem does not follow this dataset's naming."""
        match = self.sequence_pattern.fullmatch(stem)
        return (match["subject"], int(match["sentence"])) if match else None

    def splits_of(self, subject: str, sentence: int) -> list[str]:
        """Every standard split the sequence belongs to (VOCASET's val and test speakers share sentences 21-40)."""
        return [
            split
            for split in SPLITS
            if subject in self.split_subjects[split]
            and self.split_sentences[split][0] <= sentence <= self.split_sentences[split][1]
        ]

    def vertex_stride(self, frame_rate: float) -> int:
        """Keep every n-th stored frame to reach `frame_rate` (VOCASET: 60 -> 30 fps is 2)."""
        stride = self.capture_fps / frame_rate
        if stride < 1 or abs(stride - round(stride)) > 1e-6:
            raise ValueError(
                f"{self.display_name} is stored at {self.capture_fps:g} fps: a model at {frame_rate:g} fps would need "
                "a non-integer frame stride."
            )
        return int(round(stride))

    def annotation_type(self, num_vertices: int | None = None) -> str:
        """UniTalker's name of this dataset's annotation (one output head per name): `FLAME_5023_vertices`; a
        reduced-size mesh in this dataset's layout (the synthetic samples) gets its own vertex count in the name."""
        return f"{self.mesh_name or self.display_name}_{num_vertices or self.num_vertices}_vertices"


VOCASET_TRAIN_SUBJECTS = (
    "FaceTalk_170728_03272_TA",
    "FaceTalk_170904_00128_TA",
    "FaceTalk_170725_00137_TA",
    "FaceTalk_170915_00223_TA",
    "FaceTalk_170811_03274_TA",
    "FaceTalk_170913_03279_TA",
    "FaceTalk_170904_03276_TA",
    "FaceTalk_170912_03278_TA",
)
VOCASET_VAL_SUBJECTS = ("FaceTalk_170811_03275_TA", "FaceTalk_170908_03277_TA")
VOCASET_TEST_SUBJECTS = ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")
BIWI_TRAIN_SUBJECTS = ("F2", "F3", "F4", "M3", "M4", "M5")
BIWI_SUBJECTS = tuple(f"F{i}" for i in range(1, 9)) + tuple(f"M{i}" for i in range(1, 7))

ANIMATION_DATASETS: dict[str, AnimationDatasetInfo] = {
    "vocaset": AnimationDatasetInfo(
        name="vocaset",
        display_name="VOCASET",
        num_vertices=5023,  # FLAME topology
        capture_fps=60.0,
        frame_rate=30.0,  # FaceFormer, CodeTalker, FaceDiffuser, LG-LDM, UniTalker; VOCA itself works at 60
        train_subjects=VOCASET_TRAIN_SUBJECTS,
        split_subjects={"train": VOCASET_TRAIN_SUBJECTS, "val": VOCASET_VAL_SUBJECTS, "test": VOCASET_TEST_SUBJECTS},
        split_sentences={"train": (1, 40), "val": (21, 40), "test": (21, 40)},
        all_subjects=VOCASET_TRAIN_SUBJECTS + VOCASET_VAL_SUBJECTS + VOCASET_TEST_SUBJECTS,
        sequence_format="{subject}_sentence{sentence:02d}",
        lve_scale=1e-5,
        fdd_scale=1e-5,
        mesh_name="FLAME",
        notes="12 speakers x 40 sentences; test speakers are unseen (predicted under every training style).",
    ),
    "biwi": AnimationDatasetInfo(
        name="biwi",
        display_name="BIWI",
        num_vertices=23370,
        capture_fps=25.0,
        frame_rate=25.0,
        train_subjects=BIWI_TRAIN_SUBJECTS,
        split_subjects={split: BIWI_TRAIN_SUBJECTS for split in SPLITS},  # BIWI-Test-A: the training speakers
        split_sentences={"train": (1, 32), "val": (33, 36), "test": (37, 40)},
        all_subjects=BIWI_SUBJECTS,
        sequence_format="{subject}_e{sentence:02d}",
        lve_scale=1e-4,
        fdd_scale=1e-5,
        mesh_name="BIWI",
        vertex_scale=0.2,
        notes="14 speakers x 40 emotional sentences; Test-A = sentences 37-40 of the 6 training speakers.",
    ),
}


def get_animation_dataset(name: str) -> AnimationDatasetInfo:
    """The registry entry of a dataset, by name (case-insensitive), with a clear error for an unknown one."""
    try:
        return ANIMATION_DATASETS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(ANIMATION_DATASETS)}.") from None


# ----------------------------------------------------------------------------------------------------------------------
# Base config
# ----------------------------------------------------------------------------------------------------------------------

# The Wav2Sem configs need no global registration to be rebuilt from a saved dict (also under remote code).
_WAV2SEM_CONFIG_TYPES = {Wav2SemFusedConfig.model_type: Wav2SemFusedConfig, Wav2SemConfig.model_type: Wav2SemConfig}
# Filled from the dataset's facts when a preset leaves them `None`.
_DATASET_FIELDS = ("vertice_dim", "frame_rate", "train_subjects")


class AnimationConfig(PreTrainedConfig):
    r"""
    Base configuration of the animation models (`FaceFormerConfig`, `VOCAConfig`, ...). Not a model of its own.

    A subclass declares its hyper-parameters as fields and its published settings per dataset in `presets`
    (`{dataset: {field: value}}`). Every field left `None` is filled from `presets[dataset]`, then from the dataset's
    facts in `ANIMATION_DATASETS` (`vertice_dim`, `frame_rate`, `train_subjects`), so `Config.from_preset("biwi")` and
    `Config(dataset="biwi")` are the same. With `dataset=None` (custom data), every such field must be given.

    Args:
        audio_config (`dict` or `PreTrainedConfig`, *optional*): the audio encoder's config, built with `AutoConfig`
            from its `model_type` (`wav2vec2`, `hubert`, `wavlm`, `data2vec-audio`, `wav2sem-fused`, ...). Defaults
            to a wav2vec2-base config.
        dataset (`str`, *optional*, defaults to `"vocaset"`): the preset the `None` fields come from (`"vocaset"`,
            `"biwi"`, a model's extra presets), or `None`.
        vertice_dim (`int`): V*3, the size of one flattened mesh frame.
        frame_rate (`float`): vertex frames per second the model predicts; also sets the number of frames predicted
            for a clip when it is not given.
        train_subjects (`list[str]`): the training speakers; the speaking style takes a one-hot over them.
        freeze_feature_encoder (`bool`, defaults to `True`): keep the audio encoder's conv feature encoder frozen (all
            six baselines do); re-applied after loading.
        sampling_rate (`int`, defaults to 16000): audio sampling rate.
        initializer_range (`float`, defaults to 0.02): std of the normal initialisation where a model uses one.
    """

    model_type = "wav2sem-animation"
    sub_configs_defaults = {"audio_config": SubConfigSpec(config_class=AutoConfig, model_type="wav2vec2")}
    presets = {}  # {dataset: {field: value}}, set by each model's config (a class attribute, not a config field)

    audio_config: dict | PreTrainedConfig | None = None
    dataset: str | None = "vocaset"
    vertice_dim: int | None = None
    frame_rate: float | int | None = None
    train_subjects: list[str] | None = None
    freeze_feature_encoder: bool = True
    sampling_rate: int = 16000
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if isinstance(self.audio_config, dict) and self.audio_config.get("model_type") in _WAV2SEM_CONFIG_TYPES:
            audio_config = dict(self.audio_config)
            self.audio_config = _WAV2SEM_CONFIG_TYPES[audio_config.pop("model_type")](**audio_config)
        self._fill_from_preset()
        self.train_subjects = list(self.train_subjects)
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def _fill_from_preset(self):
        if self.dataset is not None:
            self.dataset = self.dataset.lower()
            if self.dataset not in self.presets:
                raise ValueError(
                    f"dataset must be one of {sorted(self.presets)} or None (custom), got {self.dataset!r}."
                )
            preset = dict(self.presets[self.dataset])
            facts = ANIMATION_DATASETS[preset.pop("data", self.dataset)]
            defaults = {
                "vertice_dim": facts.vertice_dim,
                "frame_rate": facts.frame_rate,
                "train_subjects": list(facts.train_subjects),
                **preset,
            }
            for key, value in defaults.items():
                if getattr(self, key, None) is None:
                    setattr(self, key, copy.deepcopy(value))
        required = set(_DATASET_FIELDS) | {key for values in self.presets.values() for key in values if key != "data"}
        missing = sorted(key for key in required if getattr(self, key, None) is None)
        if missing:
            raise ValueError(f"With dataset=None, these fields must be given: {', '.join(missing)}.")

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message (subclasses extend it)."""
        if self.vertice_dim < 1 or self.vertice_dim % 3 != 0:
            raise ValueError(f"vertice_dim must be a positive multiple of 3 (V*3), got {self.vertice_dim}.")
        if self.frame_rate <= 0:
            raise ValueError(f"frame_rate must be > 0, got {self.frame_rate}.")
        if not self.train_subjects:
            raise ValueError("train_subjects must name at least one training speaker.")
        if len(set(self.train_subjects)) != len(self.train_subjects):
            raise ValueError("train_subjects has duplicates.")

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """As `PreTrainedConfig.from_dict`, but a config of another model type is refused: transformers only warns,
        and `from_pretrained` would then build this model with new weights in place of the checkpoint's."""
        model_type = config_dict.get("model_type")
        if model_type is not None and model_type != cls.model_type:
            raise ValueError(
                f"This checkpoint is a `{model_type}` model, not a `{cls.model_type}` one ({cls.__name__}): load it "
                "with its own class or with AutoModel."
            )
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AnimationConfig":
        """The published settings of this model for dataset `name` (see `presets`), with `overrides` on top."""
        if name.lower() not in cls.presets:
            raise ValueError(f"Unknown preset {name!r} for {cls.__name__}; choose from {sorted(cls.presets)}.")
        return cls(dataset=name, **overrides)

    @property
    def dataset_info(self) -> AnimationDatasetInfo | None:
        """The registry entry of the dataset this config's preset belongs to (`None` for custom data)."""
        if self.dataset is None:
            return None
        return ANIMATION_DATASETS[self.presets.get(self.dataset, {}).get("data", self.dataset)]

    @property
    def num_subjects(self) -> int:
        """Number of training speakers (the size of the style one-hot)."""
        return len(self.train_subjects)

    @property
    def num_vertices(self) -> int:
        return self.vertice_dim // 3

    @property
    def audio_hidden_size(self) -> int:
        """Width of the audio encoder's `last_hidden_state` (F_p, or F_d for a fused encoder)."""
        return self.audio_config.hidden_size

    @property
    def backbone_config(self) -> PreTrainedConfig:
        """The config of the speech model that owns the conv feature encoder (the backbone of a fused encoder)."""
        return getattr(self.audio_config, "audio_config", None) or self.audio_config

    @property
    def is_fused(self) -> bool:
        """Whether the audio encoder is a `Wav2SemFusedEncoder` (baseline + Wav2Sem)."""
        return self.audio_config.model_type == Wav2SemFusedConfig.model_type

    @property
    def audio_frame_rate(self) -> float:
        """Conv feature frames per second (50 for 16 kHz audio and a 320-sample hop)."""
        if self.backbone_config.model_type == "whisper":  # 10 ms log-mel frames, stride-2 conv: 50 Hz
            return 50.0
        strides = getattr(self.backbone_config, "conv_stride", None)
        if not strides:
            raise ValueError(f"The audio encoder ({self.backbone_config.model_type}) has no conv feature encoder.")
        return self.sampling_rate / math.prod(strides)

    def subject_id(self, name: str) -> int:
        """Index of a training speaker in the style one-hot."""
        try:
            return self.train_subjects.index(name)
        except ValueError:
            known = ", ".join(self.train_subjects)
            raise ValueError(f"Unknown subject {name!r}; training subjects: {known}.") from None


__all__ = [
    "ANIMATION_DATASETS",
    "AnimationConfig",
    "AnimationDatasetInfo",
    "BIWI_TRAIN_SUBJECTS",
    "VOCASET_TRAIN_SUBJECTS",
    "get_animation_dataset",
]
