# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch VOCA (Cudeiro et al., "Capture, Learning, and Synthesis of 3D Speaking Styles", CVPR 2019) as a
transformers model whose audio encoder is any wav2vec2-family model loaded with `AutoModel` (HuBERT, Wav2Vec2, WavLM,
Data2VecAudio) or a `Wav2SemFusedEncoder` (baseline + Wav2Sem).

VOCA was published in TensorFlow on frozen DeepSpeech v0.1.0 logits (29 per 50 Hz step). Here the encoder's 50 Hz
output (F_p, or the fused F_d) takes the place of those logits: it is interpolated in time to the vertex frame rate as
the original interpolates the logits, projected to 29 features by a learned `audio_projection` (identity for a 29-wide
encoder), cut into one 16-frame window per vertex frame, and decoded by the published network. Written from a
description of the published model, not from its code (which is under a non-commercial licence).

Read top to bottom: output, time interpolation, windows and TF padding, loss, pre-trained base class, model. What every
animation model shares (the audio encoder contract, speaking styles, templates, labels, freezing, the saved feature
extractor) is in `modeling_animation.py`. Imports only torch, transformers and the sibling files, so the file doubles
as Hub remote code. Module names follow the original's variable scopes (`batch_norm`, `convs` for conv1..conv4, `fc1`,
`fc2`, `expression_layer` for ExpressionLayer/expression_offset), so a converter maps them one to one.

Shapes: B batch, L samples, N audio frames (50 Hz), T vertex frames, M real frames of the batch (the sum of the items'
T_b), C encoder width, F window features (29), W window size (16), S training speakers, E expression dim (50),
V3 = V*3 flattened vertices.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init

from .configuration_voca import VOCAConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel
from .modeling_wav2sem import lengths_to_mask

# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class VOCAOutput(AnimationOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        `reconstruction_loss + velocity_weight * velocity_loss`; when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The predicted meshes: `expression_layer(codes)` plus the template. Frames beyond an item's length (see
        `vertex_mask`) hold the template.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, T, C)`):
        The audio encoder's output (F_p, or F_d for a fused encoder) interpolated to the vertex frame rate, before
        `audio_projection`.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, E)`):
        The expression codes (`fc2`'s output), before `expression_layer`; zero on padded frames.
    reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*):
        Mean over the real frames and the vertices of the squared L2 distance (sum over xyz) to `labels`.
    velocity_loss (`torch.FloatTensor` of shape `()`, *optional*):
        The same mean for the frame-to-frame differences, over pairs of consecutive real frames.
    """

    reconstruction_loss: torch.FloatTensor | None = None
    velocity_loss: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Time interpolation, windows and TF "SAME" padding
# ----------------------------------------------------------------------------------------------------------------------


def interpolate_in_time(
    features: torch.Tensor, num_frames: int, source_rate: float, target_rate: float
) -> torch.Tensor:
    """`(..., N)` frames at `source_rate` -> `(..., num_frames)` at `target_rate`: per feature, `np.interp` of the
    values at times `i / source_rate` to the times `j / target_rate`, clamped to the first / last value outside them
    (VOCA's alignment of the 50 Hz DeepSpeech logits to the 60 fps meshes)."""
    frames = features.shape[-1]
    if frames == 1:
        return features.expand(*features.shape[:-1], num_frames).clone()
    source = torch.arange(frames, device=features.device, dtype=torch.float64) / source_rate
    target = torch.arange(num_frames, device=features.device, dtype=torch.float64) / target_rate
    left = (torch.searchsorted(source, target, right=True) - 1).clamp(0, frames - 2)
    weight = ((target - source[left]) / (source[left + 1] - source[left])).clamp(0.0, 1.0).to(features.dtype)
    return features[..., left] * (1 - weight) + features[..., left + 1] * weight


def speech_windows(features: torch.Tensor, frames: list[int], window_size: int) -> torch.Tensor:
    """`(B, T, F)` -> `(B, T, W, F)`: for every vertex frame i the feature frames `i - W // 2 .. i + W - W // 2 - 1`
    (i-8 .. i+7 for W = 16), zero outside each item's own `frames[b]` frames."""
    total = features.shape[1]
    if min(frames) < total:
        mask = lengths_to_mask(torch.tensor(frames, device=features.device), total)
        features = features * mask[..., None].to(features.dtype)
    before = window_size // 2
    padded = F.pad(features, (0, 0, before, window_size - 1 - before))  # zero-pad the time axis
    return padded.unfold(1, window_size, 1).transpose(2, 3)


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TF `"SAME"` padding `(before, after)` of one axis: the output has ceil(length / stride) steps and the odd pad
    goes after (kernel 3, stride 2 on an even length: 0 before, 1 after; PyTorch's symmetric padding differs)."""
    output = -(-length // stride)
    total = max((output - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


# ----------------------------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------------------------


def voca_losses(
    vertices: torch.Tensor, labels: torch.Tensor, vertex_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """VOCA's reconstruction and velocity terms for `(B, T, V*3)` predictions and labels (in fp32).

    Reconstruction: the mean over real frames and vertices of `||pred - gt||^2` (sum over xyz). Velocity: the same
    mean of `||(pred_t - pred_{t-1}) - (gt_t - gt_{t-1})||^2` over pairs of consecutive real frames (0 when no item
    has two frames).
    """
    batch, total, _ = vertices.shape
    difference = (vertices.float() - labels.float()).view(batch, total, -1, 3)
    if vertex_mask is None:
        vertex_mask = torch.ones(batch, total, dtype=torch.bool, device=vertices.device)
    weights = vertex_mask.to(difference.dtype)
    per_frame = difference.pow(2).sum(-1).mean(-1)  # (B, T)
    reconstruction = (per_frame * weights).sum() / weights.sum()
    pair_weights = weights[:, 1:] * weights[:, :-1]
    per_pair = (difference[:, 1:] - difference[:, :-1]).pow(2).sum(-1).mean(-1)  # (B, T-1)
    velocity = (per_pair * pair_weights).sum() / pair_weights.sum().clamp(min=1.0)
    return reconstruction, velocity


# ----------------------------------------------------------------------------------------------------------------------
# Pre-trained base class
# ----------------------------------------------------------------------------------------------------------------------


class VOCAPreTrainedModel(AnimationPreTrainedModel):
    """VOCA's initialisation (truncated normals as the TF original) and the Hub plumbing."""

    config: VOCAConfig
    config_class = VOCAConfig
    base_model_prefix = "voca"
    resample_point = "output"  # DeepSpeech's logits were its output: VOCA interpolates the encoder's output frames

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        config = self.config
        if any(module is conv for conv in getattr(self, "convs", ())):
            # The original's conv weights and biases: truncated normal (at 2 std, as TF's), std 0.02.
            std = config.initializer_range
            init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            init.trunc_normal_(module.bias, mean=0.0, std=std, a=-2 * std, b=2 * std)
            return
        if module is getattr(self, "fc1", None) or module is getattr(self, "fc2", None):
            std = config.fc_initializer_range  # fully connected: truncated normal, std 0.1, zero biases
            init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)  # expression_layer, audio_projection: PyTorch's; batch_norm: 1 / 0


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class VOCAForAnimation(VOCAPreTrainedModel):
    r"""
    VOCA: speech-driven 3D facial animation, one mesh per vertex frame from a short window of audio features.

    audio (B, L) -> audio encoder -> 50 Hz frames (B, N, C), interpolated in time to the vertex frame rate (B, T, C)
    -> `audio_projection` Linear(C, 29) (identity when C == 29) -> per frame a window of 16 feature frames (i-8 ..
    i+7, zero-padded) -> `batch_norm` with one channel (one mean / variance over all values, as TF normalises the
    trailing channel of `[N, 16, 29, 1]`) -> the speaker one-hot tiled over the window as 8 more channels (29 + 8) ->
    4 x (`convs[i]`: Conv2d kernel (3, 1), stride (2, 1), TF "SAME" padding; ReLU), time 16 -> 8 -> 4 -> 2 -> 1 ->
    flatten (64) ⊕ one-hot -> `fc1` (tanh, 128) -> `fc2` (50, the expression code) -> `expression_layer`
    Linear(50, V*3) -> + template.

    Every frame is predicted from its own window: no recurrence, no attention over time. The windows of a batch's real
    frames are packed into one `(M, ...)` batch before `batch_norm`, so in training its statistics come from real
    frames only and a right-padded batch trains exactly as the concatenation of its items. Call
    `init_expression_basis` with training offsets before training, as the original initialises `expression_layer`
    from a PCA basis.

    The audio encoder is any wav2vec2-family `AutoModel` or a `Wav2SemFusedEncoder`; its conv feature encoder is
    frozen (`config.freeze_feature_encoder`); its Transformer layers train with the rest (the original's DeepSpeech
    was frozen entirely: freeze them with `model.audio_encoder.requires_grad_(False)` to match). Audio is 16 kHz mono
    prepared by the encoder's feature extractor; batches may be right-padded (`attention_mask` for the audio,
    `vertex_mask` for the frames).

    Example:

    ```python
    >>> import torch
    >>> from transformers import Wav2Vec2Config
    >>> from modeling_wav2sem import VOCAConfig, VOCAForAnimation
    >>> audio_config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    >>> config = VOCAConfig.from_preset("vocaset", audio_config=audio_config, vertice_dim=60)
    >>> model = VOCAForAnimation(config).eval()
    >>> out = model.predict(torch.randn(1, 16000), torch.zeros(60), subject_index="FaceTalk_170725_00137_TA")
    >>> out.vertices.shape  # 1 s at 60 fps
    torch.Size([1, 58, 60])
    ```
    """

    def __init__(self, config: VOCAConfig, audio_encoder=None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)
        features, subjects = config.audio_feature_dim, config.num_subjects
        if config.audio_hidden_size == features:
            self.audio_projection = nn.Identity()
        else:
            self.audio_projection = nn.Linear(config.audio_hidden_size, features)
        self.batch_norm = nn.BatchNorm2d(1, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        in_channels = features + (subjects if config.condition_speech_features else 0)
        self.convs = nn.ModuleList()
        for channels in config.conv_channels:
            self.convs.append(
                nn.Conv2d(in_channels, channels, kernel_size=(config.conv_kernel_size, 1), stride=(2, 1))
            )
            in_channels = channels
        self.fc1 = nn.Linear(in_channels + subjects, config.fc_hidden_size)
        self.fc2 = nn.Linear(config.fc_hidden_size, config.expression_dim)
        self.expression_layer = nn.Linear(config.expression_dim, config.vertice_dim)
        self.post_init()

    # -- audio ---------------------------------------------------------------------------------------------------------

    def resample_audio_frames(self, features: torch.Tensor, lengths: list[int], targets: list[int]) -> torch.Tensor:
        """`(B, C, N)` encoder frames at 50 Hz, each item's first `lengths[b]` real, to `targets[b]` frames at
        `config.frame_rate` by VOCA's interpolation in time (`interpolate_in_time`), zero-padded `(B, C, max)`."""
        source_rate, target_rate = self.config.audio_frame_rate, self.config.frame_rate
        output = features.new_zeros(features.shape[0], features.shape[1], max(targets))
        for b, (n, t) in enumerate(zip(lengths, targets)):
            real = features[b, :, : min(n, features.shape[-1])]
            output[b, :, :t] = interpolate_in_time(real, t, source_rate, target_rate)
        return output

    # -- network -------------------------------------------------------------------------------------------------------

    def encode_windows(self, windows: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        r"""The speech encoder of VOCA on packed windows.

        Args:
            windows (`(M, W, F)`): one window of feature frames per vertex frame.
            one_hot (`(M, S)`): each frame's speaker one-hot (or mixing weights).

        Returns:
            `(M, E)` expression codes.
        """
        hidden = self.batch_norm(windows[:, None])  # (M, 1, W, F): one channel, as TF's trailing channel of 1
        hidden = hidden[:, 0].transpose(1, 2)[..., None]  # (M, F, W, 1): features as channels, time as height
        if self.config.condition_speech_features:
            tiled = one_hot[:, :, None, None].expand(-1, -1, hidden.shape[2], 1)
            hidden = torch.cat([hidden, tiled.to(hidden.dtype)], dim=1)  # (M, F + S, W, 1)
        for conv in self.convs:
            before, after = same_padding(hidden.shape[2], conv.kernel_size[0], conv.stride[0])
            hidden = F.relu(conv(F.pad(hidden, (0, 0, before, after))))
        hidden = torch.cat([hidden.flatten(1), one_hot.to(hidden.dtype)], dim=-1)  # (M, C_last + S)
        return self.fc2(torch.tanh(self.fc1(hidden)))

    @torch.no_grad()
    def init_expression_basis(self, offsets: torch.Tensor, center: bool = True) -> torch.Tensor:
        r"""Set `expression_layer` from the first `expression_dim` principal directions of training offsets, bias 0,
        as the original initialises its ExpressionLayer from a PCA basis of the training data
        (`init_expression_basis.npy`).

        Args:
            offsets (`torch.Tensor` of shape `(N, V*3)`, `(N, V, 3)` or `(..., V*3)`): training frames minus their
                speaker's template. A few thousand frames give a stable basis; the SVD is exact (fp64, `N x V*3`).
            center (`bool`, defaults to `True`): subtract the mean offset first (PCA); `False` takes the directions
                of the uncentred offsets.

        Returns:
            `(E, V*3)` the orthonormal basis, row e is the weight column of expression code e.
        """
        vertice_dim, dim = self.config.vertice_dim, self.config.expression_dim
        if offsets.shape[-1] == 3 and vertice_dim != 3 and offsets.dim() >= 2:
            offsets = offsets.flatten(-2)
        if offsets.shape[-1] != vertice_dim:
            raise ValueError(f"offsets must end in V*3 = vertice_dim = {vertice_dim}, got {tuple(offsets.shape)}.")
        data = offsets.reshape(-1, vertice_dim).double()
        if not bool(torch.isfinite(data).all()):
            raise ValueError("offsets contains NaN or Inf.")
        if center:
            data = data - data.mean(0, keepdim=True)
        needed = dim + int(center)
        if data.shape[0] < needed:
            raise ValueError(f"{dim} principal directions need at least {needed} offset frames, got {data.shape[0]}.")
        _, _, right = torch.linalg.svd(data, full_matrices=False)
        basis = right[:dim]  # (E, V3)
        weight = self.expression_layer.weight
        weight.copy_(basis.T.to(weight.dtype))
        self.expression_layer.bias.zero_()
        return basis.to(weight.dtype)

    # -- forward -------------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> VOCAOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh.
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the training speaker(s) whose
                style to use, by index in `config.train_subjects` or by name.
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground-truth vertices.
                With them the forward returns `loss = reconstruction + velocity_weight * velocity`, each the mean over
                frames (real frames; velocity over pairs of consecutive real frames) and vertices of the squared L2
                distance (sum over xyz). The original samples random pairs of consecutive frames across the training
                set, 64 pairs per batch; here every frame and every consecutive pair of whole sequences counts.
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, num_subjects)`, *optional*): instead of `subject_index`
                (the original's condition; mixing weights blend styles).
            num_frames (`int` or `torch.LongTensor` of shape `(B,)`, *optional*): frames to predict without `labels`;
                by default from the audio duration (`config.frame_rate`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames
        )
        batch = input_values.shape[0]
        total = max(frames)

        features = self.audio_projection(audio_features)  # (B, T, F)
        template = self.prepare_template(template, batch, features.dtype)  # (B, V3)
        one_hot = self.style_one_hot(subject_index, subject_one_hot, batch, features.device, features.dtype)

        # Pack the real frames' windows: batch norm sees no padding, every frame is decoded on its own.
        windows = speech_windows(features, frames, self.config.window_size)  # (B, T, W, F)
        real = vertex_mask
        if real is None:
            real = torch.ones(batch, total, dtype=torch.bool, device=features.device)
        codes = self.encode_windows(windows[real], one_hot[:, None].expand(-1, total, -1)[real])  # (M, E)
        offsets = self.expression_layer(codes)  # (M, V3)

        expression = codes.new_zeros(batch, total, codes.shape[-1])
        expression[real] = codes
        motion = offsets.new_zeros(batch, total, offsets.shape[-1])
        motion[real] = offsets
        vertices = motion + template[:, None]

        loss = reconstruction = velocity = None
        if labels is not None:
            reconstruction, velocity = voca_losses(vertices, labels, vertex_mask)
            loss = reconstruction + self.config.velocity_weight * velocity

        output = VOCAOutput(
            loss=loss,
            vertices=vertices,
            vertex_mask=vertex_mask,
            audio_features=audio_features,
            last_hidden_state=expression,
            reconstruction_loss=reconstruction,
            velocity_loss=velocity,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def predict(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> VOCAOutput | tuple:
        r"""Animate a clip (call `.eval()` first): `vertices` `(B, T, V*3)` at `config.frame_rate` (60 fps for the
        published VOCASET model), floor(duration * frame_rate) frames per clip unless `num_frames` is given, and, for a
        batch of unequal clips, `vertex_mask`. Mixing weights in `subject_one_hot` blend speaking styles."""
        return self.forward(
            input_values,
            template,
            subject_index=subject_index,
            attention_mask=attention_mask,
            subject_one_hot=subject_one_hot,
            num_frames=num_frames,
            return_dict=return_dict,
        )

    generate = predict


__all__ = [
    "VOCAForAnimation",
    "VOCAOutput",
    "VOCAPreTrainedModel",
    "interpolate_in_time",
    "same_padding",
    "speech_windows",
    "voca_losses",
]
