# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of FaceFormer (Fan et al., CVPR 2022) as a transformers model, with a swappable audio encoder.

The audio encoder is a sub-config built with `AutoConfig` from its `model_type`: a plain speech encoder (`wav2vec2`,
`hubert`, `wavlm`, `data2vec-audio`, ...: the published baseline) or a `wav2sem-fused` encoder (the baseline plus
Wav2Sem). Nothing else in the model depends on which.

This file imports only `transformers` and its sibling configuration file, so that it doubles as Hub remote code.
"""

from .configuration_animation import BIWI_TRAIN_SUBJECTS, VOCASET_TRAIN_SUBJECTS, AnimationConfig

# The published settings per dataset (model hyper-parameters only; mesh size, frame rate and training speakers come
# from `ANIMATION_DATASETS`). `FaceFormerConfig.from_preset(name)` or `FaceFormerConfig(dataset=name)` fills every
# field left `None` from here.
FACEFORMER_PRESETS: dict[str, dict] = {
    # 5023 FLAME vertices at 30 fps (60 fps captures downsampled by 2); the 50 Hz conv features are linearly
    # interpolated to one audio frame per vertex frame before the Transformer layers of the encoder.
    "vocaset": {"feature_dim": 64, "period": 30, "audio_frames_per_vertex_frame": 1, "audio_resampling": "interpolate"},
    # 23,370 vertices at 25 fps: two 50 Hz audio frames per vertex frame (the alignment mask pairs them). As the
    # published code, the conv frames are cropped to an even count of at most 2 per vertex frame, not interpolated.
    "biwi": {"feature_dim": 128, "period": 25, "audio_frames_per_vertex_frame": 2, "audio_resampling": "truncate"},
}
FACEFORMER_DATASETS = FACEFORMER_PRESETS  # the name before the animation base


class FaceFormerConfig(AnimationConfig):
    r"""
    Configuration of [`FaceFormerForAnimation`]: an audio encoder (wav2vec2-family, CNN frozen, conv features resampled
    to the vertex frame rate), `audio_feature_map` Linear(hidden, d), a speaker style embedding, periodic positional
    encoding, a Transformer decoder with the biased periodic causal self-attention mask and the alignment
    cross-attention mask, and a zero-initialised output Linear(d, V*3) whose output is added to the template.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"` or `"biwi"`, see `FACEFORMER_PRESETS`, and the
    dataset's facts in `ANIMATION_DATASETS`); with `dataset=None` they must all be given. The common fields
    (`audio_config`, `dataset`, `vertice_dim`, `frame_rate`, `train_subjects`, `freeze_feature_encoder`,
    `sampling_rate`, `initializer_range`) are documented in [`AnimationConfig`].

    Args:
        feature_dim (`int`): d, the decoder width (64 VOCASET, 128 BIWI).
        period (`int`): period p of the positional encoding and of the temporal bias (30 VOCASET, 25 BIWI).
        audio_frames_per_vertex_frame (`int`): audio frames each vertex frame attends to through the alignment mask
            (1 VOCASET, 2 BIWI).
        audio_resampling (`str`): how the conv features are brought to `audio_frames_per_vertex_frame` frames per
            vertex frame, before the encoder's Transformer layers: `"interpolate"` (linear, `align_corners=True`, as
            FaceFormer does for VOCASET) or `"truncate"` (as FaceFormer does for BIWI: the conv frames are cropped to
            `k * T`; a clip with fewer conv frames keeps `N // k` vertex frames, and its labels are cut to them).
        num_attention_heads (`int`, defaults to 4): decoder heads (the temporal bias has one slope per head).
        num_hidden_layers (`int`, defaults to 1): decoder layers.
        intermediate_size (`int`, *optional*): decoder feed-forward width; `2 * feature_dim` when `None`.
        dropout (`float`, defaults to 0.1): dropout of the positional encoding and of the decoder layers.
        max_seq_len (`int`, defaults to 600): size of the precomputed temporal-bias mask. Not a limit: longer sequences
            get a larger mask built on demand.

    Example:

    ```python
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import FaceFormerConfig
    >>> config = FaceFormerConfig.from_preset("biwi", audio_config=Wav2Vec2Config())
    >>> config.feature_dim, config.period, config.num_subjects
    (128, 25, 6)
    ```
    """

    model_type = "wav2sem-faceformer"
    presets = FACEFORMER_PRESETS

    feature_dim: int | None = None
    period: int | None = None
    audio_frames_per_vertex_frame: int | None = None
    audio_resampling: str | None = None
    num_attention_heads: int = 4
    num_hidden_layers: int = 1
    intermediate_size: int | None = None
    dropout: float | int = 0.1
    max_seq_len: int = 600

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.feature_dim

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        if self.feature_dim % self.num_attention_heads != 0:
            raise ValueError(
                f"feature_dim ({self.feature_dim}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.feature_dim % 2 != 0:
            raise ValueError(f"feature_dim must be even (sin/cos positional encoding), got {self.feature_dim}.")
        if self.period < 1 or self.audio_frames_per_vertex_frame < 1:
            raise ValueError("period and audio_frames_per_vertex_frame must be >= 1.")
        if self.audio_resampling not in ("interpolate", "truncate"):
            raise ValueError(f"audio_resampling must be 'interpolate' or 'truncate', got {self.audio_resampling!r}.")


__all__ = ["BIWI_TRAIN_SUBJECTS", "FACEFORMER_DATASETS", "FACEFORMER_PRESETS", "FaceFormerConfig", "VOCASET_TRAIN_SUBJECTS"]
