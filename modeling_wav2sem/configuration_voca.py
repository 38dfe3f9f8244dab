# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of VOCA (Cudeiro et al., CVPR 2019) as a transformers model, with a swappable audio encoder.

VOCA was published with frozen DeepSpeech v0.1.0 features (29 character logits per 50 Hz step) in TensorFlow. Here the
audio encoder is any wav2vec2-family `AutoConfig` or a `wav2sem-fused` one; a learned Linear projects its frames to
the window's feature width (`audio_feature_dim`, 29) when the widths differ. Everything after that follows the
published network.

This file imports only `transformers` and its sibling configuration file, so that it doubles as Hub remote code.
"""

from .configuration_animation import AnimationConfig

# The settings per dataset (mesh size and training speakers come from `ANIMATION_DATASETS`; a preset's `"data"` names
# the dataset whose facts it uses). VOCA itself exists only for VOCASET at the captured 60 fps; the 30 fps and BIWI
# presets are the same network at the rate the later baselines use.
VOCA_PRESETS: dict[str, dict] = {
    "vocaset": {"frame_rate": 60.0},  # the published model: every captured frame
    "vocaset-30fps": {"data": "vocaset", "frame_rate": 30.0},  # every 2nd frame, as FaceFormer / CodeTalker / ...
    "biwi": {"frame_rate": 25.0},
}


def same_padding_output_length(length: int, stride: int) -> int:
    """Output length of a TF `"SAME"`-padded convolution: ceil(length / stride)."""
    return -(-length // stride)


class VOCAConfig(AnimationConfig):
    r"""
    Configuration of [`VOCAForAnimation`]: an audio encoder (wav2vec2-family, CNN frozen) whose 50 Hz output is
    linearly interpolated in time to the vertex frame rate and projected to `audio_feature_dim` features; per vertex
    frame a window of `window_size` feature frames, an input batch norm with one channel, the speaker one-hot tiled
    over the window as extra channels, `len(conv_channels)` convolutions of kernel (`conv_kernel_size`, 1) and stride
    (2, 1) with TF `"SAME"` padding and ReLU (time 16 -> 8 -> 4 -> 2 -> 1), the flattened output with the one-hot ->
    `fc1` (tanh) -> `fc2` (`expression_dim`) -> `expression_layer` Linear(expression_dim, V*3) -> + template.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"` at 60 fps as published, `"vocaset-30fps"`,
    `"biwi"`; see `VOCA_PRESETS`) and the dataset's facts in `ANIMATION_DATASETS`; with `dataset=None` they must all be
    given. The common fields (`audio_config`, `dataset`, `vertice_dim`, `frame_rate`, `train_subjects`,
    `freeze_feature_encoder`, `sampling_rate`, `initializer_range`) are documented in [`AnimationConfig`];
    `initializer_range` (0.02) is the std of VOCA's truncated-normal convolution initialisation.

    Args:
        audio_feature_dim (`int`, defaults to 29): features per window frame (DeepSpeech's 29 logits in the original).
            The encoder's frames go through a learned `audio_projection` Linear(encoder width, audio_feature_dim) when
            the widths differ, as is when they are equal.
        window_size (`int`, defaults to 16): feature frames per vertex frame; window i covers feature frames
            `i - window_size // 2 .. i + window_size - window_size // 2 - 1` (i-8 .. i+7), zero-padded at the ends.
        conv_channels (`list[int]`, defaults to `[32, 32, 64, 64]`): output channels of the strided convolutions
            (the original's filters times `speech_encoder_size_factor` 1.0). Each halves the time axis (ceil), and the
            last must leave one step.
        conv_kernel_size (`int`, defaults to 3): temporal kernel of the convolutions (stride 2, TF `"SAME"` padding).
        fc_hidden_size (`int`, defaults to 128): width of `fc1` (tanh).
        expression_dim (`int`, defaults to 50): width of `fc2`, the expression code decoded by `expression_layer`.
        velocity_weight (`float`, defaults to 10.0): weight of the velocity term of the training loss.
        condition_speech_features (`bool`, defaults to `True`): tile the speaker one-hot over the window and
            concatenate it to the convolutions' input channels (29 + 8). The one-hot always joins `fc1`'s input.
        batch_norm_momentum (`float`, defaults to 0.1): PyTorch momentum of the input batch norm (TF's decay 0.9).
        batch_norm_eps (`float`, defaults to 1e-5): epsilon of the input batch norm (TF's).
        fc_initializer_range (`float`, defaults to 0.1): std of the truncated-normal initialisation of `fc1` and `fc2`.

    Example:

    ```python
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import VOCAConfig
    >>> config = VOCAConfig.from_preset("vocaset", audio_config=Wav2Vec2Config())
    >>> config.frame_rate, config.window_size, config.num_subjects, config.vertice_dim
    (60.0, 16, 8, 15069)
    >>> VOCAConfig.from_preset("vocaset-30fps", audio_config=Wav2Vec2Config()).frame_rate
    30.0
    ```
    """

    model_type = "wav2sem-voca"
    presets = VOCA_PRESETS

    audio_feature_dim: int = 29
    window_size: int = 16
    conv_channels: list[int] | tuple[int, ...] = (32, 32, 64, 64)
    conv_kernel_size: int = 3
    fc_hidden_size: int = 128
    expression_dim: int = 50
    velocity_weight: float | int = 10.0
    condition_speech_features: bool = True
    batch_norm_momentum: float = 0.1
    batch_norm_eps: float = 1e-5
    fc_initializer_range: float = 0.1

    def __post_init__(self, **kwargs):
        self.conv_channels = list(self.conv_channels)
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        for name in ("audio_feature_dim", "window_size", "conv_kernel_size", "fc_hidden_size", "expression_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must be a non-empty list of positive widths, got {self.conv_channels}.")
        if self.conv_window_lengths[-1] != 1:
            raise ValueError(
                f"window_size {self.window_size} must reach 1 time step after the {len(self.conv_channels)} stride-2 "
                f"convolutions (lengths {self.conv_window_lengths}); the original uses 16 with 4 convolutions."
            )
        if self.velocity_weight < 0:
            raise ValueError(f"velocity_weight must be >= 0, got {self.velocity_weight}.")
        if not 0 <= self.batch_norm_momentum <= 1 or self.batch_norm_eps <= 0:
            raise ValueError("batch_norm_momentum must be in [0, 1] and batch_norm_eps > 0.")

    @property
    def conv_window_lengths(self) -> list[int]:
        """Time steps of the window before and after each convolution (16, 8, 4, 2, 1)."""
        lengths = [self.window_size]
        for _ in self.conv_channels:
            lengths.append(same_padding_output_length(lengths[-1], 2))
        return lengths


__all__ = ["VOCA_PRESETS", "VOCAConfig"]
