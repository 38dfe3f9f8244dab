# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of CodeTalker (Xing et al., CVPR 2023) as transformers models: the stage-1 VQ-VAE over vertex
offsets (`CodeTalkerVQVAEConfig`, no audio) and the stage-2 code predictor with a swappable audio encoder
(`CodeTalkerConfig`, which holds the stage-1 config as a sub-config, so one saved folder describes both).

Read top to bottom: the published settings per dataset, the VQ-VAE config, the predictor config.

This file imports only `transformers` and its sibling configuration files, so that it doubles as Hub remote code.
"""

import copy

from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_animation import ANIMATION_DATASETS, AnimationConfig

# ----------------------------------------------------------------------------------------------------------------------
# Published settings (config/{vocaset,BIWI}/stage{1,2}.yaml of github.com/Doubiiu/CodeTalker)
# ----------------------------------------------------------------------------------------------------------------------

# Stage 1: the VQ-VAE. Both datasets: hidden 1024, 6 layers, 8 heads, FFN 1536, 256 codes, no temporal downsampling.
# VOCASET splits each frame's 1024 latent features into 16 tokens of 64; BIWI maps them to 8 x 128 through a Linear
# after the encoder (and back before the decoder), and its output layer has no bias.
CODETALKER_VQVAE_PRESETS: dict[str, dict] = {
    "vocaset": {"tokens_per_frame": 16, "code_dim": 64, "latent_projection": False, "output_bias": True},
    "biwi": {"tokens_per_frame": 8, "code_dim": 128, "latent_projection": True, "output_bias": False},
}
# Stage 2: the autoregressive predictor (d 1024, 4 heads, FFN 2048). VOCASET interpolates the 50 Hz conv features to
# one per vertex frame; BIWI crops them to two per vertex frame (as FaceFormer, whose code CodeTalker's is).
CODETALKER_PRESETS: dict[str, dict] = {
    "vocaset": {"num_hidden_layers": 6, "period": 30, "audio_frames_per_vertex_frame": 1, "audio_resampling": "interpolate"},
    "biwi": {"num_hidden_layers": 12, "period": 25, "audio_frames_per_vertex_frame": 2, "audio_resampling": "truncate"},
}


# ----------------------------------------------------------------------------------------------------------------------
# Stage 1
# ----------------------------------------------------------------------------------------------------------------------


class CodeTalkerVQVAEConfig(PreTrainedConfig):
    r"""
    Configuration of [`CodeTalkerVQVAE`], CodeTalker's stage 1: a Transformer VQ-VAE over vertex offsets (no audio).

    Encoder: Linear(V*3, hidden) + LeakyReLU -> Conv1d(k=5, replicate padding) + LeakyReLU + instance norm ->
    Linear(hidden, hidden) -> the published positional encoding (see `CodeTalkerVQVAE`) -> `num_hidden_layers` pre-LN
    Transformer blocks -> (BIWI: Linear(hidden, tokens_per_frame * code_dim)). Each frame's latent is cut into
    `tokens_per_frame` tokens of `code_dim`, each quantised to the nearest of `num_embeddings` codes. The decoder mirrors
    it and ends with Linear(hidden, V*3); the output plus the template is the reconstruction.

    Fields left `None` are filled from `presets[dataset]` (`"vocaset"`, `"biwi"`, see `CODETALKER_VQVAE_PRESETS`) and
    the dataset's vertex count; with `dataset=None` they must all be given.

    Args:
        dataset (`str`, *optional*, defaults to `"vocaset"`): the preset, or `None` (custom).
        vertice_dim (`int`): V*3.
        tokens_per_frame (`int`): `face_quan_num` of the original (16 VOCASET, 8 BIWI).
        code_dim (`int`): `zquant_dim`, the width of a code (64 VOCASET, 128 BIWI).
        latent_projection (`bool`): BIWI's Linear layers between the Transformers and the latent
            (`encoder_linear_embedding_post`, `decoder_linear_embedding_pre`). Without them the latent is the
            encoder's hidden state, so `tokens_per_frame * code_dim` must equal `hidden_size`.
        output_bias (`bool`): whether `vertice_map_reverse` has a bias (VOCASET yes, BIWI no).
        num_embeddings (`int`, defaults to 256): codebook size (`n_embed`).
        hidden_size (`int`, defaults to 1024), num_hidden_layers (`int`, defaults to 6), num_attention_heads (`int`,
            defaults to 8), intermediate_size (`int`, defaults to 1536): the encoder's and decoder's Transformers.
        negative_slope (`float`, defaults to 0.2): of the LeakyReLUs (`neg`).
        commitment_cost (`float`, defaults to 0.25): beta of the codebook loss.
        quant_loss_weight (`float`, defaults to 1.0): weight of the codebook loss next to the L1 reconstruction.
        dropout (`float`, defaults to 0.1): dropout after the positional encoding.
        layer_norm_eps (`float`, defaults to 1e-5), instance_norm_eps (`float`, defaults to 1e-5).

    Example:

    ```python
    >>> from modeling_wav2sem import CodeTalkerVQVAEConfig
    >>> config = CodeTalkerVQVAEConfig.from_preset("biwi")
    >>> config.tokens_per_frame, config.code_dim, config.vertice_dim
    (8, 128, 70110)
    ```
    """

    model_type = "wav2sem-codetalker-vqvae"
    presets = CODETALKER_VQVAE_PRESETS

    dataset: str | None = "vocaset"
    vertice_dim: int | None = None
    tokens_per_frame: int | None = None
    code_dim: int | None = None
    latent_projection: bool | None = None
    output_bias: bool | None = None
    num_embeddings: int = 256
    hidden_size: int = 1024
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    intermediate_size: int = 1536
    negative_slope: float = 0.2
    commitment_cost: float = 0.25
    quant_loss_weight: float = 1.0
    dropout: float | int = 0.1
    layer_norm_eps: float = 1e-5
    instance_norm_eps: float = 1e-5

    def __post_init__(self, **kwargs):
        if self.dataset is not None:
            self.dataset = self.dataset.lower()
            if self.dataset not in self.presets:
                raise ValueError(f"dataset must be one of {sorted(self.presets)} or None, got {self.dataset!r}.")
            defaults = {"vertice_dim": ANIMATION_DATASETS[self.dataset].vertice_dim, **self.presets[self.dataset]}
            for key, value in defaults.items():
                if getattr(self, key) is None:
                    setattr(self, key, value)
        missing = sorted(k for k in ("vertice_dim", *CODETALKER_VQVAE_PRESETS["vocaset"]) if getattr(self, k) is None)
        if missing:
            raise ValueError(f"With dataset=None, these fields must be given: {', '.join(missing)}.")
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        if self.vertice_dim < 1 or self.vertice_dim % 3 != 0:
            raise ValueError(f"vertice_dim must be a positive multiple of 3 (V*3), got {self.vertice_dim}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )
        if not self.latent_projection and self.latent_dim != self.hidden_size:
            raise ValueError(
                f"Without latent_projection the latent is the hidden state: tokens_per_frame * code_dim "
                f"({self.tokens_per_frame} * {self.code_dim}) must equal hidden_size ({self.hidden_size})."
            )
        if min(self.tokens_per_frame, self.code_dim, self.num_embeddings) < 1:
            raise ValueError("tokens_per_frame, code_dim and num_embeddings must be >= 1.")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "CodeTalkerVQVAEConfig":
        """The published stage-1 settings for dataset `name`, with `overrides` on top."""
        if name.lower() not in cls.presets:
            raise ValueError(f"Unknown preset {name!r} for {cls.__name__}; choose from {sorted(cls.presets)}.")
        return cls(dataset=name, **overrides)

    @property
    def latent_dim(self) -> int:
        """Latent features per frame: `tokens_per_frame * code_dim`."""
        return self.tokens_per_frame * self.code_dim


# ----------------------------------------------------------------------------------------------------------------------
# Stage 2
# ----------------------------------------------------------------------------------------------------------------------


class FrozenVQVAEConfigMixin:
    """For the config of a model with a FaceFormer-style decoder over a frozen CodeTalker stage 1 (CodeTalker's
    predictor, LG-LDM's denoiser; fields `vqvae_config`, `feature_dim`, `num_attention_heads`, `intermediate_size`):
    the feed-forward width `2 * feature_dim` by default, `vqvae_config` built from a dict (or `None`) over the stage-1
    preset of the same dataset with the model's `vertice_dim` (so partial overrides work: `{"hidden_size": 64}`), and
    the checks that the stage 1 reconstructs the model's meshes and that the decoder width splits into its heads. Mix
    in before `AnimationConfig`."""

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.feature_dim
        super().__post_init__(**kwargs)

    def _fill_from_preset(self):
        super()._fill_from_preset()
        vqvae = self.vqvae_config
        if not isinstance(vqvae, PreTrainedConfig):
            fields = {k: v for k, v in copy.deepcopy(vqvae or {}).items() if k != "model_type"}
            data = self.dataset_info.name if self.dataset is not None else None
            fields.setdefault("dataset", data if data in CODETALKER_VQVAE_PRESETS else None)
            fields.setdefault("vertice_dim", self.vertice_dim)
            self.vqvae_config = CodeTalkerVQVAEConfig(**fields)

    def validate_architecture(self):
        super().validate_architecture()
        if self.vqvae_config.vertice_dim != self.vertice_dim:
            raise ValueError(
                f"The stage-1 model reconstructs {self.vqvae_config.vertice_dim} values per frame; this model predicts "
                f"vertice_dim={self.vertice_dim}."
            )
        if self.feature_dim % self.num_attention_heads != 0 or self.feature_dim % 2 != 0:
            raise ValueError(
                f"feature_dim ({self.feature_dim}) must be even and divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )


class CodeTalkerConfig(FrozenVQVAEConfigMixin, AnimationConfig):
    r"""
    Configuration of [`CodeTalkerForAnimation`], CodeTalker's stage 2: an audio encoder (wav2vec2-family, CNN frozen,
    conv features resampled to the vertex rate), `audio_feature_map` Linear(hidden, d), a speaker style embedding,
    FaceFormer's periodic positional encoding, biased causal mask and alignment mask in a Transformer decoder, and
    `feat_map` Linear(d, tokens_per_frame * code_dim), zero-initialised, whose output is quantised and decoded by the
    frozen stage-1 VQ-VAE described by `vqvae_config`.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"`, `"biwi"`, see `CODETALKER_PRESETS`) and the
    dataset's facts in `ANIMATION_DATASETS`. The common fields are documented in [`AnimationConfig`].

    Args:
        vqvae_config (`dict` or [`CodeTalkerVQVAEConfig`], *optional*): the stage-1 model. A dict (or `None`) is filled
            from the stage-1 preset of the same dataset with this config's `vertice_dim`, so partial overrides work
            (`{"hidden_size": 64}`).
        feature_dim (`int`, defaults to 1024): d, the decoder width.
        num_hidden_layers (`int`): decoder layers (6 VOCASET, 12 BIWI).
        num_attention_heads (`int`, defaults to 4): decoder heads (the temporal bias has one slope per head).
        intermediate_size (`int`, *optional*): decoder feed-forward width; `2 * feature_dim` when `None`.
        period (`int`): of the positional encoding and the temporal bias (30 VOCASET, 25 BIWI).
        audio_frames_per_vertex_frame (`int`), audio_resampling (`str`): as in [`FaceFormerConfig`] (VOCASET 1 and
            `"interpolate"`, BIWI 2 and `"truncate"`).
        dropout (`float`, defaults to 0.1): of the positional encoding and the decoder layers.
        motion_weight (`float`, defaults to 1.0), reg_weight (`float`, defaults to 1.0): the loss is motion_weight x
            MSE(vertices) + reg_weight x MSE(predicted features, quantised stage-1 features of the ground truth).
        max_seq_len (`int`, defaults to 600): size of the precomputed temporal-bias mask; not a limit.

    Example:

    ```python
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import CodeTalkerConfig
    >>> config = CodeTalkerConfig.from_preset("biwi", audio_config=Wav2Vec2Config())
    >>> config.num_hidden_layers, config.vqvae_config.tokens_per_frame
    (12, 8)
    ```
    """

    model_type = "wav2sem-codetalker"
    presets = CODETALKER_PRESETS
    sub_configs_defaults = {
        **AnimationConfig.sub_configs_defaults,
        "vqvae_config": SubConfigSpec(config_class=CodeTalkerVQVAEConfig),
    }

    vqvae_config: dict | PreTrainedConfig | None = None
    feature_dim: int = 1024
    num_hidden_layers: int | None = None
    num_attention_heads: int = 4
    intermediate_size: int | None = None
    period: int | None = None
    audio_frames_per_vertex_frame: int | None = None
    audio_resampling: str | None = None
    dropout: float | int = 0.1
    motion_weight: float = 1.0
    reg_weight: float = 1.0
    max_seq_len: int = 600

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        if self.period < 1 or self.audio_frames_per_vertex_frame < 1:
            raise ValueError("period and audio_frames_per_vertex_frame must be >= 1.")
        if self.audio_resampling not in ("interpolate", "truncate"):
            raise ValueError(f"audio_resampling must be 'interpolate' or 'truncate', got {self.audio_resampling!r}.")


__all__ = [
    "CODETALKER_PRESETS",
    "CODETALKER_VQVAE_PRESETS",
    "CodeTalkerConfig",
    "CodeTalkerVQVAEConfig",
    "FrozenVQVAEConfigMixin",
]
