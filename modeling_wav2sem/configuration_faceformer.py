# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of FaceFormer (Fan et al., CVPR 2022) as a transformers model, with a swappable audio encoder.

The audio encoder is a sub-config built with `AutoConfig` from its `model_type`: a plain speech encoder (`wav2vec2`,
`hubert`, `wavlm`, `data2vec-audio`, ...: the published baseline) or a `wav2sem-fused` encoder (the baseline plus
Wav2Sem). Nothing else in the model depends on which.

This file imports only `transformers` and its sibling configuration file, so that it doubles as Hub remote code.
"""

import copy
import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_wav2sem import Wav2SemConfig, Wav2SemFusedConfig

VOCASET_TRAIN_SUBJECTS = [
    "FaceTalk_170728_03272_TA",
    "FaceTalk_170904_00128_TA",
    "FaceTalk_170725_00137_TA",
    "FaceTalk_170915_00223_TA",
    "FaceTalk_170811_03274_TA",
    "FaceTalk_170913_03279_TA",
    "FaceTalk_170904_03276_TA",
    "FaceTalk_170912_03278_TA",
]
BIWI_TRAIN_SUBJECTS = ["F2", "F3", "F4", "M3", "M4", "M5"]

# The published settings per dataset; `FaceFormerConfig(dataset=...)` fills every field left `None` from here.
FACEFORMER_DATASETS: dict[str, dict] = {
    # 5023 FLAME vertices at 30 fps (60 fps captures downsampled by 2); the 50 Hz conv features are linearly
    # interpolated to one audio frame per vertex frame before the Transformer layers of the encoder.
    "vocaset": {
        "vertice_dim": 5023 * 3,
        "feature_dim": 64,
        "period": 30,
        "frame_rate": 30.0,
        "audio_frames_per_vertex_frame": 1,
        "train_subjects": VOCASET_TRAIN_SUBJECTS,
    },
    # 23,370 vertices at 25 fps: two 50 Hz audio frames per vertex frame (the alignment mask pairs them).
    "biwi": {
        "vertice_dim": 23370 * 3,
        "feature_dim": 128,
        "period": 25,
        "frame_rate": 25.0,
        "audio_frames_per_vertex_frame": 2,
        "train_subjects": BIWI_TRAIN_SUBJECTS,
    },
}
_DATASET_FIELDS = tuple(FACEFORMER_DATASETS["vocaset"])
_FUSED_MODEL_TYPES = {Wav2SemFusedConfig.model_type: Wav2SemFusedConfig, Wav2SemConfig.model_type: Wav2SemConfig}


class FaceFormerConfig(PreTrainedConfig):
    r"""
    Configuration of [`FaceFormerForAnimation`]: an audio encoder (wav2vec2-family, CNN frozen, conv features resampled
    to the vertex frame rate), `audio_feature_map` Linear(hidden, d), a speaker style embedding, periodic positional
    encoding, a Transformer decoder with the biased periodic causal self-attention mask and the alignment
    cross-attention mask, and a zero-initialised output Linear(d, V*3) whose output is added to the template.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"` or `"biwi"`, see `FACEFORMER_DATASETS`); with
    `dataset=None` they must all be given.

    Args:
        audio_config (`dict` or `PreTrainedConfig`, *optional*): the audio encoder's config, built with `AutoConfig`
            from its `model_type` (`wav2vec2`, `hubert`, `wavlm`, `data2vec-audio`, `wav2sem-fused`, ...). Defaults to
            a wav2vec2-base config (the FaceFormer baseline, `facebook/wav2vec2-base-960h`'s architecture).
        dataset (`str`, *optional*, defaults to `"vocaset"`): `"vocaset"`, `"biwi"` or `None` (custom).
        vertice_dim (`int`): V*3, the size of one flattened mesh frame (15069 VOCASET, 70110 BIWI).
        feature_dim (`int`): d, the decoder width (64 VOCASET, 128 BIWI).
        period (`int`): period p of the positional encoding and of the temporal bias (30 VOCASET, 25 BIWI).
        frame_rate (`float`): vertex frames per second (30 VOCASET, 25 BIWI); sets the number of frames predicted for
            an audio clip when it is not given.
        audio_frames_per_vertex_frame (`int`): audio frames each vertex frame attends to through the alignment mask
            (1 VOCASET, 2 BIWI). The conv features are resampled to exactly this many frames per vertex frame.
        audio_resampling (`str`, defaults to `"interpolate"`): how the conv features are brought to
            `audio_frames_per_vertex_frame` frames per vertex frame: `"interpolate"` (linear, `align_corners=True`, as
            FaceFormer does for VOCASET) or `"truncate"` (drop the conv frames beyond the target, as FaceFormer does for
            BIWI; a clip with too few conv frames is stretched by interpolation instead of cutting the vertices).
        train_subjects (`list[str]`): the training speakers; the style embedding takes a one-hot over them.
        num_attention_heads (`int`, defaults to 4): decoder heads (the temporal bias has one slope per head).
        num_hidden_layers (`int`, defaults to 1): decoder layers.
        intermediate_size (`int`, *optional*): decoder feed-forward width; `2 * feature_dim` when `None`.
        dropout (`float`, defaults to 0.1): dropout of the positional encoding and of the decoder layers.
        max_seq_len (`int`, defaults to 600): size of the precomputed temporal-bias mask. Not a limit: longer sequences
            get a larger mask built on demand.
        freeze_feature_encoder (`bool`, defaults to `True`): keep the audio encoder's conv feature encoder frozen.
        sampling_rate (`int`, defaults to 16000): audio sampling rate.
        initializer_range (`float`, defaults to 0.02): kept for transformers' utilities; the layers use PyTorch's
            default initialisation, as the original.

    Example:

    ```python
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import FaceFormerConfig, FaceFormerForAnimation
    >>> config = FaceFormerConfig(dataset="biwi", audio_config=Wav2Vec2Config())
    >>> config.feature_dim, config.period, config.num_subjects
    (128, 25, 6)
    ```
    """

    model_type = "wav2sem-faceformer"
    sub_configs_defaults = {"audio_config": SubConfigSpec(config_class=AutoConfig, model_type="wav2vec2")}

    audio_config: dict | PreTrainedConfig | None = None
    dataset: str | None = "vocaset"
    vertice_dim: int | None = None
    feature_dim: int | None = None
    period: int | None = None
    frame_rate: float | int | None = None
    audio_frames_per_vertex_frame: int | None = None
    audio_resampling: str = "interpolate"
    train_subjects: list[str] | None = None
    num_attention_heads: int = 4
    num_hidden_layers: int = 1
    intermediate_size: int | None = None
    dropout: float | int = 0.1
    max_seq_len: int = 600
    freeze_feature_encoder: bool = True
    sampling_rate: int = 16000
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        # The Wav2Sem configs need no global registration to be rebuilt from a saved dict (also under remote code).
        if isinstance(self.audio_config, dict) and self.audio_config.get("model_type") in _FUSED_MODEL_TYPES:
            audio_config = dict(self.audio_config)
            self.audio_config = _FUSED_MODEL_TYPES[audio_config.pop("model_type")](**audio_config)
        if self.dataset is not None:
            self.dataset = self.dataset.lower()
            if self.dataset not in FACEFORMER_DATASETS:
                raise ValueError(
                    f"dataset must be one of {sorted(FACEFORMER_DATASETS)} or None (custom), got {self.dataset!r}."
                )
            for key, value in FACEFORMER_DATASETS[self.dataset].items():
                if getattr(self, key) is None:
                    setattr(self, key, copy.deepcopy(value))
        missing = [key for key in _DATASET_FIELDS if getattr(self, key) is None]
        if missing:
            raise ValueError(f"With dataset=None, these fields must be given: {', '.join(missing)}.")
        self.train_subjects = list(self.train_subjects)
        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.feature_dim
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Part of `@strict`-powered validation: reject inconsistent settings with a clear message."""
        if self.feature_dim % self.num_attention_heads != 0:
            raise ValueError(
                f"feature_dim ({self.feature_dim}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.feature_dim % 2 != 0:
            raise ValueError(f"feature_dim must be even (sin/cos positional encoding), got {self.feature_dim}.")
        if self.period < 1 or self.audio_frames_per_vertex_frame < 1 or self.frame_rate <= 0:
            raise ValueError("period and audio_frames_per_vertex_frame must be >= 1 and frame_rate > 0.")
        if self.audio_resampling not in ("interpolate", "truncate"):
            raise ValueError(f"audio_resampling must be 'interpolate' or 'truncate', got {self.audio_resampling!r}.")
        if not self.train_subjects:
            raise ValueError("train_subjects must name at least one training speaker.")
        if len(set(self.train_subjects)) != len(self.train_subjects):
            raise ValueError("train_subjects has duplicates.")

    @property
    def num_subjects(self) -> int:
        """Number of training speakers (the size of the style one-hot)."""
        return len(self.train_subjects)

    @property
    def audio_hidden_size(self) -> int:
        """Width of the audio encoder's `last_hidden_state` (the input of `audio_feature_map`)."""
        return self.audio_config.hidden_size

    @property
    def backbone_config(self) -> PreTrainedConfig:
        """The config of the speech model that owns the conv feature encoder (the backbone of a fused encoder)."""
        return getattr(self.audio_config, "audio_config", None) or self.audio_config

    @property
    def audio_frame_rate(self) -> float:
        """Conv feature frames per second (50 for 16 kHz audio and a 320-sample hop)."""
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


__all__ = ["BIWI_TRAIN_SUBJECTS", "FACEFORMER_DATASETS", "FaceFormerConfig", "VOCASET_TRAIN_SUBJECTS"]
