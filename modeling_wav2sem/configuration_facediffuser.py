# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of FaceDiffuser (Stan et al., "FaceDiffuser: Speech-Driven Facial Animation Synthesis Using
Diffusion", MIG 2023) as a transformers model, with a swappable audio encoder.

The published code is under CC BY-NC 4.0; this file is written fresh from a description of the model. It imports only
`transformers` and its sibling configuration file, so that it doubles as Hub remote code. The diffusion schedule is
described by plain fields (diffusers' names); the sampler itself lives in `pipeline_animation_diffusion.py`.
"""

from .configuration_animation import AnimationConfig

# The published settings per dataset (the README's `predict.py` commands for the released checkpoints; mesh size,
# frame rate and training speakers come from `ANIMATION_DATASETS`). VOCASET: the 50 Hz encoder output is linearly
# interpolated (align_corners) to 2 frames per 30 fps vertex frame; BIWI: cut to an even count of at most 2 per 25 fps
# frame (a clip with fewer keeps N // 2 frames, its labels are cut to them). Both pair the two frames (2 x 768).
FACEDIFFUSER_PRESETS: dict[str, dict] = {
    "vocaset": {
        "feature_dim": 256,
        "gru_hidden_size": 256,
        "num_train_timesteps": 1000,
        "audio_frames_per_vertex_frame": 2,
        "audio_resampling": "interpolate",
    },
    "biwi": {
        "feature_dim": 512,
        "gru_hidden_size": 512,
        "num_train_timesteps": 500,
        "audio_frames_per_vertex_frame": 2,
        "audio_resampling": "truncate",
    },
}

DIFFUSION_SCHEDULERS = ("ddpm", "ddim")


class FaceDiffuserConfig(AnimationConfig):
    r"""
    Configuration of [`FaceDiffuserForAnimation`]: a GRU denoiser that predicts the clean vertex sequence x0 (absolute
    vertices, not offsets) of a whole clip from its noised version x_t, the diffusion step, the audio and the speaking
    style, sampled with ancestral DDPM over a cosine schedule.

    Denoiser (per vertex frame): audio = `cond_projection` Linear(k*C, d) of the k encoder frames of the frame,
    concatenated; motion = `input_projection` (Linear(V*3, 2d) -> Conv1d(1, 1, 9, 'same') over the feature axis ->
    ReLU -> MaxPool1d(2) -> ReLU, i.e. d features); time = Linear(num_train_timesteps, d) + Mish on the one-hot of the
    step; [audio, motion, time] -> LayerNorm(3d) -> GRU(3d -> gru_hidden_size, `gru_num_layers` layers, dropout
    `gru_dropout`) -> times the style Linear(S, d, no bias) of the one-hot -> `final_layer` Linear(gru_hidden_size,
    V*3), zero-initialised -> + template.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"`, `"biwi"`, see `FACEDIFFUSER_PRESETS`) and
    the dataset's facts in `ANIMATION_DATASETS`. The common fields (`audio_config`, `dataset`, `vertice_dim`,
    `frame_rate`, `train_subjects`, `freeze_feature_encoder`, `sampling_rate`, `initializer_range`) are documented in
    [`AnimationConfig`].

    Args:
        feature_dim (`int`): d, the latent width (256 VOCASET, 512 BIWI).
        gru_hidden_size (`int`): GRU width (256 VOCASET, 512 BIWI); must equal `feature_dim`, as the style is
            multiplied element-wise into the GRU output.
        gru_num_layers (`int`, defaults to 2): GRU layers (unidirectional).
        gru_dropout (`float`, defaults to 0.3): dropout between the GRU layers.
        conv_kernel_size (`int`, defaults to 9): kernel of the motion projection's Conv1d over the feature axis (odd).
        audio_frames_per_vertex_frame (`int`, defaults by preset to 2): k encoder frames concatenated per vertex frame.
        audio_resampling (`str`): `"interpolate"` (VOCASET: the encoder output linearly interpolated to k*T frames) or
            `"truncate"` (BIWI: its first k*T frames).
        frozen_encoder_layers (`list[int]`, defaults to `[0, 1]`): Transformer layers of the audio encoder kept frozen,
            with its `feature_projection` (`freeze_feature_projection`), as published; the conv feature encoder is
            frozen by `freeze_feature_encoder`. Re-applied after loading.
        freeze_feature_projection (`bool`, defaults to `True`): see above.
        num_train_timesteps (`int`): diffusion steps N (1000 VOCASET, 500 BIWI); the time embedding is over their
            one-hot, so a checkpoint fixes N.
        beta_schedule (`str`, defaults to `"squaredcos_cap_v2"`): the cosine schedule (s = 0.008, betas clipped to
            0.999), diffusers' name; the only one published.
        prediction_type (`str`, defaults to `"sample"`): the denoiser predicts x0 (the only published choice).
        variance_type (`str`, defaults to `"fixed_small"`): DDPM's posterior variance (guided diffusion's FIXED_SMALL).
        clip_sample (`bool`, defaults to `False`): the sampler does not clip x0 (vertices are not in [-1, 1]).
        diffusion_scheduler (`str`, defaults to `"ddpm"`): the sampler `predict` uses: `"ddpm"` (ancestral, as
            published) or `"ddim"` (eta 0).
        num_inference_steps (`int`, *optional*): sampler steps of `predict` by default; `num_train_timesteps` (the
            published full chain) when `None`.
        huber_delta (`float`, defaults to 1.0): delta of the Huber training loss on x0 (the published `HuberLoss()`).

    Example:

    ```python
    >>> from transformers import HubertConfig
    >>> from modeling_wav2sem import FaceDiffuserConfig
    >>> config = FaceDiffuserConfig.from_preset("biwi", audio_config=HubertConfig())
    >>> config.feature_dim, config.num_train_timesteps, config.default_inference_steps, config.num_subjects
    (512, 500, 500, 6)
    ```
    """

    model_type = "wav2sem-facediffuser"
    presets = FACEDIFFUSER_PRESETS

    feature_dim: int | None = None
    gru_hidden_size: int | None = None
    gru_num_layers: int = 2
    gru_dropout: float | int = 0.3
    conv_kernel_size: int = 9
    audio_frames_per_vertex_frame: int | None = None
    audio_resampling: str | None = None
    frozen_encoder_layers: list[int] | tuple[int, ...] = (0, 1)
    freeze_feature_projection: bool = True
    num_train_timesteps: int | None = None
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "sample"
    variance_type: str = "fixed_small"
    clip_sample: bool = False
    diffusion_scheduler: str = "ddpm"
    num_inference_steps: int | None = None
    huber_delta: float | int = 1.0

    def __post_init__(self, **kwargs):
        self.frozen_encoder_layers = [int(i) for i in self.frozen_encoder_layers]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        for name in ("feature_dim", "gru_hidden_size", "gru_num_layers", "audio_frames_per_vertex_frame"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.gru_hidden_size != self.feature_dim:
            raise ValueError(
                f"gru_hidden_size ({self.gru_hidden_size}) must equal feature_dim ({self.feature_dim}): the speaking "
                "style (feature_dim wide) is multiplied element-wise into the GRU output."
            )
        if self.conv_kernel_size < 1 or self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd ('same' padding), got {self.conv_kernel_size}.")
        if not 0 <= self.gru_dropout < 1:
            raise ValueError(f"gru_dropout must be in [0, 1), got {self.gru_dropout}.")
        if self.audio_resampling not in ("interpolate", "truncate"):
            raise ValueError(f"audio_resampling must be 'interpolate' or 'truncate', got {self.audio_resampling!r}.")
        layers = self.backbone_config.num_hidden_layers
        bad = [i for i in self.frozen_encoder_layers if not 0 <= i < layers]
        if bad:
            raise ValueError(f"frozen_encoder_layers {bad} are not layers of the {layers}-layer audio encoder.")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}.")
        if self.beta_schedule != "squaredcos_cap_v2":
            raise ValueError(f"FaceDiffuser uses the cosine schedule ('squaredcos_cap_v2'), got {self.beta_schedule!r}.")
        if self.prediction_type != "sample":
            raise ValueError(f"FaceDiffuser's denoiser predicts x0 (prediction_type='sample'), got "
                             f"{self.prediction_type!r}.")
        if self.variance_type not in ("fixed_small", "fixed_large"):
            raise ValueError(f"variance_type must be 'fixed_small' or 'fixed_large', got {self.variance_type!r}.")
        if self.diffusion_scheduler not in DIFFUSION_SCHEDULERS:
            raise ValueError(f"diffusion_scheduler must be one of {DIFFUSION_SCHEDULERS}, got "
                             f"{self.diffusion_scheduler!r}.")
        if self.num_inference_steps is not None and not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps must be in [1, num_train_timesteps={self.num_train_timesteps}], got "
                f"{self.num_inference_steps}."
            )
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta}.")

    @property
    def default_inference_steps(self) -> int:
        """The sampler steps `predict` takes by default: `num_inference_steps`, else the full chain."""
        return self.num_inference_steps or self.num_train_timesteps


__all__ = ["DIFFUSION_SCHEDULERS", "FACEDIFFUSER_PRESETS", "FaceDiffuserConfig"]
