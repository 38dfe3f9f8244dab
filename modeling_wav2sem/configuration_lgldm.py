# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of LG-LDM (Song et al., IEEE TVCG 2024, "Expressive 3D Facial Animation Generation Based on
Local-to-global Latent Diffusion") as a transformers model: `LGLDMConfig`, the stage-2 latent diffusion model (the
Facial Denoiser Model, FDM, over a frozen stage-1 VQ-VAE) with a swappable audio encoder. The stage 1 is CodeTalker's
VQ-VAE (`CodeTalkerVQVAEConfig`), held as the sub-config `vqvae_config`, so one saved folder describes both stages.

Read top to bottom: the published settings per dataset, the config. Imports only `transformers` and the sibling
configuration files, so that it doubles as Hub remote code.
"""

from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_animation import AnimationConfig
from .configuration_codetalker import CodeTalkerVQVAEConfig, FrozenVQVAEConfigMixin

# ----------------------------------------------------------------------------------------------------------------------
# Published settings (models/fdm_vocaset.py, models/fdm.py, samples/sample_diffusion_*.py of
# github.com/wangxuanx/Face-Diffusion-Model)
# ----------------------------------------------------------------------------------------------------------------------

# Both datasets: d 1024, 8 decoder layers, FFN 2048, 1000 diffusion steps (cosine), x0 prediction. VOCASET: 8 heads,
# period 30, plain Linear style, Linear + Mish latent encoder, DDIM 100 steps; its 50 Hz audio is interpolated to one
# frame per 30 fps vertex frame (the published code truncates instead, see the model file). BIWI: 4 heads, period 25,
# Linear + Mish style, plain Linear latent encoder, two 50 Hz audio frames per 25 fps vertex frame, DDIM 50 steps.
LGLDM_PRESETS: dict[str, dict] = {
    "vocaset": {
        "num_attention_heads": 8,
        "period": 30,
        "audio_frames_per_vertex_frame": 1,
        "audio_resampling": "interpolate",
        "style_activation": False,
        "latent_activation": True,
        "num_inference_steps": 100,
    },
    "biwi": {
        "num_attention_heads": 4,
        "period": 25,
        "audio_frames_per_vertex_frame": 2,
        "audio_resampling": "truncate",
        "style_activation": True,
        "latent_activation": False,
        "num_inference_steps": 50,
    },
}


class LGLDMConfig(FrozenVQVAEConfigMixin, AnimationConfig):
    r"""
    Configuration of [`LGLDMForAnimation`], LG-LDM's stage 2: a latent diffusion model over the frozen stage-1 VQ-VAE
    described by `vqvae_config` (CodeTalker's), whose denoiser (FDM) predicts the clean latent x0 of a whole sequence
    from its noisy latent, the audio and the speaking style.

    Denoiser: noisy latent (T, n*c) -> `latent_encoder` Linear(n*c, d) (+ Mish) + `style_embedd` Linear(S, d) (+ Mish)
    on the one-hot -> periodic positional encoding -> Transformer decoder (`num_hidden_layers` post-LN layers, causal
    periodic ALiBi self-attention mask, diagonal memory mask) over memory = `audio_extract` (Linear(k*C, d), Mish,
    Linear(d, d)) of the audio encoder's frames (k per vertex frame, concatenated) + `time_embedd` (Linear(1000, d) +
    Mish on the one-hot of the step) -> `latent_decoder` Linear(d, n*c), zero-initialised.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"`, `"biwi"`, see `LGLDM_PRESETS`) and the
    dataset's facts in `ANIMATION_DATASETS`. The common fields are documented in [`AnimationConfig`].

    Args:
        vqvae_config (`dict` or [`CodeTalkerVQVAEConfig`], *optional*): the stage-1 model. A dict (or `None`) is filled
            from the stage-1 preset of the same dataset with this config's `vertice_dim` (`{"hidden_size": 64}`).
        feature_dim (`int`, defaults to 1024): d, the denoiser width.
        num_hidden_layers (`int`, defaults to 8): decoder layers.
        num_attention_heads (`int`): decoder heads (8 VOCASET, 4 BIWI; the temporal bias has one slope per head).
        intermediate_size (`int`, *optional*): decoder feed-forward width; `2 * feature_dim` when `None`.
        period (`int`): of the positional encoding and the temporal bias (30 VOCASET, 25 BIWI).
        audio_frames_per_vertex_frame (`int`), audio_resampling (`str`): k audio frames per vertex frame, reached by
            interpolating the encoder's 50 Hz output (`"interpolate"`) or by keeping its first k*T frames
            (`"truncate"`, BIWI's pairing); the k frames of a vertex frame are concatenated for `audio_extract`.
        style_activation (`bool`): Mish after `style_embedd` (BIWI) or not (VOCASET).
        latent_activation (`bool`): Mish after `latent_encoder` (VOCASET) or not (BIWI).
        dropout (`float`, defaults to 0.1): of the positional encoding and the decoder layers.
        num_train_timesteps (`int`, defaults to 1000): diffusion steps; the time embedding is over their one-hot.
        beta_schedule (`str`, defaults to `"squaredcos_cap_v2"`): the cosine schedule (s = 0.008, betas clipped to
            0.999 as diffusers' `squaredcos_cap_v2`; the published 0.9999 clip changes no beta of T=1000 but the last).
        prediction_type (`str`, defaults to `"sample"`): the denoiser predicts x0 (the only published choice).
        diffusion_scheduler (`str`, defaults to `"ddim"`): the sampler of `predict`: `"ddim"` (eta 0, the published
            VOCASET and BIWI sampling) or `"ddpm"` (ancestral, as the published MEAD sampling).
        num_inference_steps (`int`): sampler steps at test time (DDIM 100 VOCASET, 50 BIWI).
        latent_loss_weight (`float`, defaults to 1.0), vertex_loss_weight (`float`, defaults to 1.0): the loss is
            latent_loss_weight x MSE(x0_hat, x0) + vertex_loss_weight x MSE(decode(quantise(x0_hat)) + template, GT).
        max_seq_len (`int`, defaults to 600): size of the precomputed temporal-bias mask; not a limit.

    Example:

    ```python
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import LGLDMConfig
    >>> config = LGLDMConfig.from_preset("biwi", audio_config=Wav2Vec2Config())
    >>> config.num_attention_heads, config.num_inference_steps, config.vqvae_config.tokens_per_frame
    (4, 50, 8)
    ```
    """

    model_type = "wav2sem-lgldm"
    presets = LGLDM_PRESETS
    sub_configs_defaults = {
        **AnimationConfig.sub_configs_defaults,
        "vqvae_config": SubConfigSpec(config_class=CodeTalkerVQVAEConfig),
    }

    vqvae_config: dict | PreTrainedConfig | None = None
    feature_dim: int = 1024
    num_hidden_layers: int = 8
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    period: int | None = None
    audio_frames_per_vertex_frame: int | None = None
    audio_resampling: str | None = None
    style_activation: bool | None = None
    latent_activation: bool | None = None
    dropout: float | int = 0.1
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    diffusion_scheduler: str = "ddim"
    num_inference_steps: int | None = None
    latent_loss_weight: float = 1.0
    vertex_loss_weight: float = 1.0
    max_seq_len: int = 600

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        if self.period < 1 or self.audio_frames_per_vertex_frame < 1 or self.num_hidden_layers < 1:
            raise ValueError("period, audio_frames_per_vertex_frame and num_hidden_layers must be >= 1.")
        if self.audio_resampling not in ("interpolate", "truncate"):
            raise ValueError(f"audio_resampling must be 'interpolate' or 'truncate', got {self.audio_resampling!r}.")
        if self.beta_schedule != "squaredcos_cap_v2":
            raise ValueError(f"LG-LDM uses the cosine schedule (beta_schedule='squaredcos_cap_v2'), got "
                             f"{self.beta_schedule!r}.")
        if self.prediction_type != "sample":
            raise ValueError(f"LG-LDM's denoiser predicts x0 (prediction_type='sample'), got {self.prediction_type!r}.")
        if self.diffusion_scheduler not in ("ddim", "ddpm"):
            raise ValueError(f"diffusion_scheduler must be 'ddim' or 'ddpm', got {self.diffusion_scheduler!r}.")
        if self.num_train_timesteps < 2 or not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"Need num_train_timesteps >= 2 and 1 <= num_inference_steps <= num_train_timesteps, got "
                f"{self.num_train_timesteps} and {self.num_inference_steps}."
            )


__all__ = ["LGLDM_PRESETS", "LGLDMConfig"]
