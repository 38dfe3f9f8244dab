# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch FaceFormer (Fan et al., CVPR 2022) as a transformers model whose audio encoder is any wav2vec2-family model
loaded with `AutoModel`: a plain HuBERT / Wav2Vec2 / WavLM / Data2VecAudio checkpoint (the published baseline) or a
`Wav2SemFusedEncoder` checkpoint (baseline + Wav2Sem). Swapping one for the other changes nothing else: the encoder's
`last_hidden_state` (F_p, or the fused F_d) goes through FaceFormer's own `audio_feature_map`, which plays FC2 of
Wav2Sem as in the official port.

Read top to bottom: outputs, masks and encodings, audio resampling, pre-trained base class, model. Imports only torch,
transformers and the sibling files, so the file doubles as Hub remote code. Module names follow the original
(`audio_encoder`, `audio_feature_map`, `vertice_map`, `transformer_decoder`, `vertice_map_r`, `obj_vector`).

Shapes: B batch, L samples, N conv frames (50 Hz), T vertex frames, k audio frames per vertex frame (1 VOCASET,
2 BIWI), S = k*T aligned audio frames, C encoder width, d decoder width, H heads, V3 = V*3 flattened vertices.
"""

import contextlib
import math
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_faceformer import FaceFormerConfig
from .configuration_wav2sem import Wav2SemFusedConfig
from .modeling_wav2sem import Wav2SemFusedEncoder, conv_output_lengths, lengths_to_mask, owns_tensors


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FaceFormerOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        Mean squared error between the predicted and the ground-truth vertices, over the real frames only; when
        `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The predicted meshes: the decoded motion plus the template. Frames beyond an item's length (see `vertex_mask`)
        are not meaningful.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, k*T, C)`):
        The audio encoder's `last_hidden_state` at the vertex-aligned rate (F_p, or F_d for a fused encoder), before
        `audio_feature_map`.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`):
        The decoder's output, before `vertice_map_r`.
    """

    loss: torch.FloatTensor | None = None
    vertices: torch.FloatTensor | None = None
    vertex_mask: torch.BoolTensor | None = None
    audio_features: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Masks and encodings (built on demand for any length)
# ----------------------------------------------------------------------------------------------------------------------


def alibi_slopes(num_heads: int) -> list[float]:
    """The geometric per-head slopes of ALiBi, as FaceFormer's temporal bias uses them (0.25, 0.0625, ... for 4 heads).

    For a power of two n, slope_h = start**(h+1) with start = 2**(-8/n); otherwise the slopes of the closest lower
    power of two, completed by every other slope of twice that power.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


def temporal_bias_by_distance(num_heads: int, length: int, period: int, device=None, dtype=torch.float32):
    """`(H, length)`: the bias -slope_h * floor(distance / period) for distances 0 .. length-1."""
    slopes = torch.tensor(alibi_slopes(num_heads), device=device, dtype=dtype)
    steps = torch.div(torch.arange(length, device=device), period, rounding_mode="floor").to(dtype)
    return -(slopes[:, None] * steps[None, :])


def biased_causal_mask(num_heads: int, length: int, period: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """FaceFormer's self-attention mask `(H, T, T)`, additive: for a query frame i and a key frame j <= i the bias
    -slope_h * floor((i - j) / period) (periodic ALiBi), and -inf for j > i (causal)."""
    position = torch.arange(length, device=device)
    distance = position[:, None] - position[None, :]
    steps = torch.div(distance.clamp(min=0), period, rounding_mode="floor").to(dtype)
    slopes = torch.tensor(alibi_slopes(num_heads), device=device, dtype=dtype)
    bias = -(slopes[:, None, None] * steps[None])
    return bias.masked_fill((distance < 0)[None], float("-inf"))


def alignment_mask(num_frames: int, audio_frames: int, frames_per_vertex: int = 1, device=None) -> torch.Tensor:
    """FaceFormer's cross-attention mask `(T, S)`, boolean, True where attention is *blocked*: vertex frame t sees only
    audio frames `[k*t, k*t + k)` (its own frame for VOCASET, k=1; its pair for BIWI, k=2)."""
    rows = torch.arange(num_frames, device=device)[:, None]
    cols = torch.arange(audio_frames, device=device)[None, :]
    return torch.div(cols, frames_per_vertex, rounding_mode="floor") != rows


def periodic_positional_encoding(period: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """`(period, d)`: the sinusoidal encoding of the positions 0 .. period-1; frame t uses row t % period."""
    position = torch.arange(period, device=device, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(period, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * div_term)
    encoding[:, 1::2] = torch.cos(position * div_term)
    return encoding.to(dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Audio resampling to the vertex frame rate
# ----------------------------------------------------------------------------------------------------------------------


def resample_frames(features: torch.Tensor, target: int, mode: str = "interpolate") -> torch.Tensor:
    """`(B, C, N)` -> `(B, C, target)`: linear interpolation with `align_corners=True` (FaceFormer's), or for
    `mode="truncate"` the first `target` frames (stretched by interpolation when there are fewer)."""
    if mode == "truncate" and features.shape[-1] >= target:
        return features[..., :target]
    if features.shape[-1] == target:
        return features
    return F.interpolate(features, size=target, mode="linear", align_corners=True)


def resample_batch(
    features: torch.Tensor, conv_lengths: list[int], target_lengths: list[int], mode: str = "interpolate"
) -> torch.Tensor:
    """Resample each item's real conv frames `(B, C, N)` to its own target length; zero-pad to `(B, C, max(target))`."""
    frames = features.shape[-1]
    width = max(target_lengths)
    if all(n >= frames for n in conv_lengths) and all(t == width for t in target_lengths):
        return resample_frames(features, width, mode)
    output = features.new_zeros(features.shape[0], features.shape[1], width)
    for b, (n, t) in enumerate(zip(conv_lengths, target_lengths)):
        output[b, :, :t] = resample_frames(features[b : b + 1, :, : min(n, frames)], t, mode)[0]
    return output


def _is_fused(encoder: nn.Module) -> bool:
    """A Wav2SemFusedEncoder, by model type: under remote code the class may come from another copy of the file."""
    return getattr(getattr(encoder, "config", None), "model_type", None) == Wav2SemFusedConfig.model_type


# ----------------------------------------------------------------------------------------------------------------------
# Pre-trained base class
# ----------------------------------------------------------------------------------------------------------------------


class FaceFormerPreTrainedModel(PreTrainedModel):
    """Weight initialisation (PyTorch's defaults, as the original; zero output layer) and the Hub plumbing."""

    config: FaceFormerConfig
    config_class = FaceFormerConfig
    base_model_prefix = "faceformer"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True  # the audio encoder's layers
    _supports_sdpa = True
    _supports_flash_attn = True

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        # As Wav2SemPreTrainedModel: under custom code, transformers would skip (vacuously) the modules that own no
        # tensors; ours initialise only tensors they own, but keep the same rule for the fused encoder's sake.
        super()._initialize_weights(module, is_custom_code=is_custom_code and owns_tensors(module))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, nn.Linear):
            if module is getattr(self, "vertice_map_r", None):
                # Zero output layer: the untrained model predicts the template (FaceFormer's initialisation).
                init.zeros_(module.weight)
                init.zeros_(module.bias)
                return
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))  # nn.Linear's own default
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features) if module.in_features > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.MultiheadAttention):  # nn.MultiheadAttention._reset_parameters
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class FaceFormerForAnimation(FaceFormerPreTrainedModel):
    r"""
    FaceFormer: speech-driven 3D facial animation with an autoregressive Transformer decoder.

    audio (B, L) -> audio encoder (conv features resampled to k frames per vertex frame inside the encoder, before its
    Transformer layers) -> `audio_feature_map` Linear(C, d) = memory (B, k*T, d).
    Previous motion (vertices - template) -> `vertice_map` Linear(V3, d) + speaker style `obj_vector(one_hot)` +
    periodic positional encoding -> Transformer decoder (self-attention with the biased periodic causal mask,
    cross-attention with the alignment mask) -> `vertice_map_r` Linear(d, V3), zero-initialised -> + template.

    The audio encoder is any wav2vec2-family `AutoModel` or a `Wav2SemFusedEncoder`; its conv feature encoder is
    frozen (`config.freeze_feature_encoder`). Audio is 16 kHz mono prepared by the encoder's feature extractor
    (zero-mean unit-variance per utterance for wav2vec2-base-960h, as FaceFormer's processor does).

    Batches may be right-padded: `attention_mask` (B, L) for the audio and `vertex_mask` (B, T) for the frames. Each
    item's real conv frames are resampled to its own `k * T_b` frames and the encoder's frame mask is set at that rate,
    so an item gives the same result alone and in a padded batch (up to encoders whose conv stack leaks padding, e.g.
    the group norm of wav2vec2-base). The decoder needs no padding mask: it is causal and the alignment mask keeps each
    real frame on its own audio frames.

    Example:

    ```python
    >>> from modeling_wav2sem import FaceFormerForAnimation
    >>> baseline = FaceFormerForAnimation.from_audio_encoder("facebook/wav2vec2-base-960h", dataset="vocaset")
    >>> with_wav2sem = FaceFormerForAnimation.from_audio_encoder("path/to/wav2vec2-base-wav2sem-c", dataset="vocaset")
    >>> out = with_wav2sem.eval().predict(audio, template, subject_index=0)  # out.vertices: (1, T, 15069)
    ```
    """

    def __init__(self, config: FaceFormerConfig, audio_encoder: PreTrainedModel | None = None):
        super().__init__(config)
        if audio_encoder is None:
            if config.audio_config.model_type == Wav2SemFusedConfig.model_type:
                audio_encoder = Wav2SemFusedEncoder(config.audio_config)
            else:
                audio_encoder = AutoModel.from_config(config.audio_config)
        self.audio_encoder = audio_encoder
        self._share_audio_config()
        if getattr(config.backbone_config, "add_adapter", False):
            raise ValueError("Audio encoders with an adapter (add_adapter=True) change the frame rate: not supported.")

        d = config.feature_dim
        self.audio_feature_map = nn.Linear(config.audio_hidden_size, d)
        self.vertice_map = nn.Linear(config.vertice_dim, d)
        self.ppe_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerDecoderLayer(
            d_model=d,
            nhead=config.num_attention_heads,
            dim_feedforward=config.intermediate_size,
            dropout=config.dropout,
            batch_first=True,
        )
        self.transformer_decoder = nn.TransformerDecoder(layer, num_layers=config.num_hidden_layers)
        self.vertice_map_r = nn.Linear(d, config.vertice_dim)
        self.obj_vector = nn.Linear(config.num_subjects, d, bias=False)
        self._mask_cache: dict = {}
        self.post_init()
        self._apply_freezing()

    # -- construction and loading --------------------------------------------------------------------------------------

    def _share_audio_config(self):
        """One config object for the encoder, shared with `config.audio_config` (with the resolved attention)."""
        encoder, audio_config = self.audio_encoder, self.config.audio_config
        pairs = [(audio_config, encoder)]
        if _is_fused(encoder):
            pairs += [(audio_config.audio_config, encoder.backbone), (audio_config.wav2sem_config, encoder.wav2sem)]
        for sub_config, module in pairs:
            if sub_config._attn_implementation is None:
                sub_config._attn_implementation = module.config._attn_implementation or self.config._attn_implementation
            module.config = sub_config

    def _apply_freezing(self):
        if self.config.freeze_feature_encoder:
            self.freeze_feature_encoder()
        if _is_fused(self.audio_encoder):
            self.audio_encoder.wav2sem.requires_grad_(False)
            self.audio_encoder.wav2sem.eval()

    def freeze_feature_encoder(self):
        """Stop gradients to the audio encoder's conv feature encoder (FaceFormer keeps the CNN frozen)."""
        owner, feature_encoder = self._feature_encoder()
        feature_encoder.requires_grad_(False)
        if hasattr(feature_encoder, "_requires_grad"):
            feature_encoder._requires_grad = False  # transformers' encoders then skip the gradient-checkpointing hook

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`, then the frozen parts are frozen again (loading resets the flags)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._apply_freezing()
        return loaded

    @classmethod
    def from_audio_encoder(
        cls, audio_encoder_name_or_path: str, encoder_kwargs: dict | None = None, **config_kwargs
    ) -> "FaceFormerForAnimation":
        """A new FaceFormer around a pre-trained audio encoder (local folder or Hub id), loaded with `AutoModel`.

        The same call builds the baseline (a wav2vec2 / HuBERT checkpoint) and the Wav2Sem model (a
        `Wav2SemFusedEncoder` checkpoint). `config_kwargs` go to `FaceFormerConfig` (`dataset`, `vertice_dim`,
        `train_subjects`, ...); `encoder_kwargs` to `AutoModel.from_pretrained` (`revision`, `token`, `dtype`, ...).
        Everything but the encoder is new.
        """
        encoder = AutoModel.from_pretrained(audio_encoder_name_or_path, **(encoder_kwargs or {}))
        config = cls.config_class(audio_config=encoder.config, **config_kwargs)
        return cls(config, audio_encoder=encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if _is_fused(self.audio_encoder):
            self.audio_encoder.wav2sem.eval()
        return self

    # -- audio ---------------------------------------------------------------------------------------------------------

    def _feature_encoder(self) -> tuple[nn.Module, nn.Module]:
        """The speech model that owns the conv feature encoder (the encoder, or a fused encoder's backbone), and it."""
        owner = self.audio_encoder
        if isinstance(getattr(owner, "backbone", None), nn.Module):
            owner = owner.backbone
        feature_encoder = getattr(owner, "feature_extractor", None)
        if not isinstance(feature_encoder, nn.Module):
            raise ValueError(f"{type(owner).__name__} has no conv feature encoder (`feature_extractor`).")
        return owner, feature_encoder

    def audio_frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Conv frames (50 Hz) for `(B,)` lengths in samples."""
        backbone = self.config.backbone_config
        return conv_output_lengths(sample_lengths, backbone.conv_kernel, backbone.conv_stride)

    def num_frames_for_audio(self, conv_lengths: list[int]) -> list[int]:
        """Vertex frames for clips of `conv_lengths` conv frames: floor(N * frame_rate / audio_frame_rate), exact.

        (The original computes `int(N / 50 * fps)` in floating point, one frame fewer for a few N, e.g. 205.)
        """
        ratio = Fraction(self.config.frame_rate).limit_denominator(10**6) / Fraction(
            self.config.audio_frame_rate
        ).limit_denominator(10**6)
        return [int(n * ratio) for n in conv_lengths]

    def encode_audio(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | list[int] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[int]]:
        r"""Audio encoder output at the vertex-aligned rate.

        The conv feature encoder's output `(B, C, N)` is resampled, per item, to `k * T_b` frames by a forward hook
        installed only during this call, before the encoder's projection and Transformer layers (FaceFormer's
        interpolation of the 512-d conv features); the encoder's frame-level attention mask is set at the same rate.

        Args:
            input_values: `(B, L)` audio, right-padded.
            attention_mask: `(B, L)`, 1 on real samples.
            num_frames: vertex frames per item (an int for all, or `(B,)`); by default from each clip's duration.

        Returns:
            The features `(B, k * max(T_b), C)` and the per-item vertex frame counts `T_b`.
        """
        if input_values.dim() != 2:
            raise ValueError(f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}.")
        batch, samples = input_values.shape
        if attention_mask is None:
            sample_lengths = torch.full((batch,), samples, dtype=torch.long, device=input_values.device)
        else:
            if attention_mask.shape != input_values.shape:
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)}, input_values {tuple(input_values.shape)}."
                )
            sample_lengths = attention_mask.long().sum(-1)
        conv_lengths = [int(n) for n in self.audio_frame_lengths(sample_lengths).tolist()]
        if num_frames is None:
            frames = self.num_frames_for_audio(conv_lengths)
        elif isinstance(num_frames, int):
            frames = [num_frames] * batch
        else:
            frames = [int(n) for n in (num_frames.tolist() if torch.is_tensor(num_frames) else num_frames)]
        if len(frames) != batch:
            raise ValueError(f"num_frames has {len(frames)} entries for a batch of {batch}.")
        if min(frames) < 1:
            raise ValueError(f"Every item needs at least one vertex frame (audio too short?), got {frames}.")
        k = self.config.audio_frames_per_vertex_frame
        targets = [k * t for t in frames]
        width = max(targets)

        if min(targets) < width and attention_mask is None:
            # Equal audio lengths but unequal frame counts: the encoder still needs a frame mask.
            attention_mask = torch.ones_like(input_values, dtype=torch.long)
        elif min(targets) == width and attention_mask is not None and int(sample_lengths.min()) == samples:
            attention_mask = None  # nothing is padded at either rate
        frame_mask = None
        if attention_mask is not None:  # whenever the encoder gets a mask, its frame mask is the vertex-rate one
            frame_mask = lengths_to_mask(torch.tensor(targets, device=input_values.device), width)
        with self._vertex_rate_encoder(conv_lengths, targets, frame_mask):
            outputs = self.audio_encoder(input_values, attention_mask=attention_mask, return_dict=True)
        features = outputs.last_hidden_state
        if features.shape[1] != width:
            raise ValueError(
                f"The audio encoder returned {features.shape[1]} frames instead of {width}: its conv feature encoder "
                "output must feed its Transformer layers directly."
            )
        return features, frames

    @contextlib.contextmanager
    def _vertex_rate_encoder(self, conv_lengths: list[int], targets: list[int], frame_mask: torch.Tensor | None):
        """Resample the conv features to `targets` frames (and mask the encoder at that rate) for one encoder call."""
        owner, feature_encoder = self._feature_encoder()
        mode = self.config.audio_resampling

        def hook(module, args, output):
            return resample_batch(output, conv_lengths, targets, mode)

        def feature_vector_attention_mask(feature_vector_length, attention_mask, *args, **kwargs):
            if feature_vector_length != frame_mask.shape[1]:
                raise RuntimeError(f"Expected {frame_mask.shape[1]} frames, got {feature_vector_length}.")
            return frame_mask.to(attention_mask.device)

        handle = feature_encoder.register_forward_hook(hook)
        if frame_mask is not None:
            if not hasattr(owner, "_get_feature_vector_attention_mask"):
                handle.remove()
                raise ValueError(f"{type(owner).__name__} does not support padded batches (no frame attention mask).")
            owner._get_feature_vector_attention_mask = feature_vector_attention_mask
        try:
            yield
        finally:
            handle.remove()
            owner.__dict__.pop("_get_feature_vector_attention_mask", None)

    # -- decoder pieces ------------------------------------------------------------------------------------------------

    def _positional(self, embeddings: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Add the periodic positional encoding of frames `offset ..` to `(B, n, d)`, then dropout."""
        table = periodic_positional_encoding(
            self.config.period, self.config.feature_dim, embeddings.device, embeddings.dtype
        )
        index = (torch.arange(embeddings.shape[1], device=embeddings.device) + offset) % self.config.period
        return self.ppe_dropout(embeddings + table[index][None])

    def biased_mask(self, length: int, device, dtype) -> torch.Tensor:
        """`(H, T, T)` temporal-bias mask; precomputed up to `max_seq_len`, grown on demand for longer sequences."""
        key = (str(device), dtype)
        cached = self._mask_cache.get(key)
        if cached is None or cached.shape[-1] < length:
            size = max(length, self.config.max_seq_len)
            cached = biased_causal_mask(self.config.num_attention_heads, size, self.config.period, device, dtype)
            self._mask_cache[key] = cached
        return cached[:, :length, :length]

    def _decode(self, inputs: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """The full decoder over `(B, n, d)` inputs (teacher forcing and the naive loop)."""
        batch, length, _ = inputs.shape
        heads = self.config.num_attention_heads
        tgt_mask = self.biased_mask(length, inputs.device, inputs.dtype)
        tgt_mask = tgt_mask[None].expand(batch, -1, -1, -1).reshape(batch * heads, length, length)
        memory_mask = alignment_mask(
            length, memory.shape[1], self.config.audio_frames_per_vertex_frame, device=inputs.device
        )
        return self.transformer_decoder(inputs, memory, tgt_mask=tgt_mask, memory_mask=memory_mask)

    def _style(self, subject_index, subject_one_hot, batch: int, device, dtype) -> torch.Tensor:
        """Speaker style embedding `(B, 1, d)` from indices / names or a one-hot (or mixing weights) `(B, S)`."""
        num_subjects = self.config.num_subjects
        if subject_one_hot is None:
            if subject_index is None:
                raise ValueError("Give subject_index (training speaker index or name) or subject_one_hot.")
            if isinstance(subject_index, str):
                subject_index = self.config.subject_id(subject_index)
            if isinstance(subject_index, (list, tuple)):
                subject_index = [self.config.subject_id(s) if isinstance(s, str) else int(s) for s in subject_index]
            index = torch.as_tensor(subject_index, device=device).long().reshape(-1)
            if index.numel() == 1:
                index = index.expand(batch)
            if index.numel() != batch:
                raise ValueError(f"subject_index has {index.numel()} entries for a batch of {batch}.")
            if bool(((index < 0) | (index >= num_subjects)).any()):
                raise ValueError(f"subject_index must be in [0, {num_subjects}), got {index.tolist()}.")
            subject_one_hot = F.one_hot(index, num_subjects)
        elif subject_one_hot.shape[-1] != num_subjects:
            raise ValueError(f"subject_one_hot must have {num_subjects} columns, got {tuple(subject_one_hot.shape)}.")
        subject_one_hot = subject_one_hot.to(device=device, dtype=dtype).reshape(-1, num_subjects)
        if subject_one_hot.shape[0] == 1:
            subject_one_hot = subject_one_hot.expand(batch, -1)
        return self.obj_vector(subject_one_hot).unsqueeze(1)

    def _flat_vertices(self, tensor: torch.Tensor, name: str, dims: int) -> torch.Tensor:
        """Accept `(..., V, 3)` as well as `(..., V*3)`; check the size and the number of dims."""
        if tensor.shape[-1] == 3 and self.config.vertice_dim != 3 and tensor.dim() >= 2:
            tensor = tensor.flatten(-2)
        if tensor.shape[-1] != self.config.vertice_dim or tensor.dim() != dims:
            raise ValueError(
                f"{name} must have shape {'(B, T, V*3)' if dims == 3 else '(B, V*3)'} with "
                f"V*3 = vertice_dim = {self.config.vertice_dim} (or V, 3 as the last two dims), "
                f"got {tuple(tensor.shape)}."
            )
        return tensor

    # -- autoregressive loops ------------------------------------------------------------------------------------------

    def _autoregress_naive(self, memory: torch.Tensor, style: torch.Tensor, num_frames: int):
        """The original loop: re-run the decoder (and the output layer) over the whole prefix at every step."""
        embeddings = style
        for _ in range(num_frames):
            hidden = self._decode(self._positional(embeddings), memory)
            motion = self.vertice_map_r(hidden)
            embeddings = torch.cat([embeddings, self.vertice_map(motion[:, -1:]) + style], dim=1)
        return hidden, motion

    def _autoregress_cached(self, memory: torch.Tensor, style: torch.Tensor, num_frames: int):
        """The same outputs, one frame per step: keys/values of the decoder's self-attention are kept per layer, the
        cross-attention keys/values of the whole memory are projected once, and each step attends only to its aligned
        audio frame(s) (exactly what the alignment mask leaves) with one row of the temporal bias."""
        config = self.config
        heads, k = config.num_attention_heads, config.audio_frames_per_vertex_frame
        batch, _, d = style.shape
        head_dim = d // heads
        layers = list(self.transformer_decoder.layers)
        bias_table = temporal_bias_by_distance(heads, num_frames, config.period, style.device, style.dtype)

        def split_heads(x):  # (B, n, d) -> (B, H, n, hd)
            return x.view(batch, x.shape[1], heads, head_dim).transpose(1, 2)

        def attend(attention: nn.MultiheadAttention, query, keys, values, bias):
            q = split_heads(F.linear(query, attention.in_proj_weight[:d], attention.in_proj_bias[:d]))
            out = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=bias, dropout_p=attention.dropout if self.training else 0.0
            )
            return attention.out_proj(out.transpose(1, 2).reshape(batch, 1, d))

        memory_kv = []
        for layer in layers:
            attention = layer.multihead_attn
            key_value = F.linear(memory, attention.in_proj_weight[d:], attention.in_proj_bias[d:])
            memory_kv.append(tuple(split_heads(t) for t in key_value.chunk(2, dim=-1)))
        self_kv: list = [None] * len(layers)

        table = periodic_positional_encoding(config.period, d, style.device, style.dtype)
        step_input = self.ppe_dropout(style + table[0])
        hiddens, motions = [], []
        for i in range(num_frames):
            hidden = step_input
            bias = bias_table[:, : i + 1].flip(-1)[:, None, :]  # (H, 1, i+1): distances i .. 0
            for index, layer in enumerate(layers):
                attention = layer.self_attn
                key, value = (
                    split_heads(t)
                    for t in F.linear(hidden, attention.in_proj_weight[d:], attention.in_proj_bias[d:]).chunk(2, -1)
                )
                if self_kv[index] is not None:
                    key, value = torch.cat([self_kv[index][0], key], 2), torch.cat([self_kv[index][1], value], 2)
                self_kv[index] = (key, value)
                hidden = layer.norm1(hidden + layer.dropout1(attend(attention, hidden, key, value, bias)))
                mem_key, mem_value = memory_kv[index]
                aligned = slice(k * i, k * i + k)
                cross = attend(layer.multihead_attn, hidden, mem_key[:, :, aligned], mem_value[:, :, aligned], None)
                hidden = layer.norm2(hidden + layer.dropout2(cross))
                feed_forward = layer.linear2(layer.dropout(layer.activation(layer.linear1(hidden))))
                hidden = layer.norm3(hidden + layer.dropout3(feed_forward))
            if self.transformer_decoder.norm is not None:
                hidden = self.transformer_decoder.norm(hidden)
            motion = self.vertice_map_r(hidden)
            hiddens.append(hidden)
            motions.append(motion)
            if i + 1 < num_frames:
                step_input = self.ppe_dropout(self.vertice_map(motion) + style + table[(i + 1) % config.period])
        return torch.cat(hiddens, 1), torch.cat(motions, 1)

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
        teacher_forcing: bool = True,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
    ) -> FaceFormerOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh.
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the training speaker(s) whose
                style to use, by index in `config.train_subjects` or by name.
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground-truth vertices.
                With them the forward returns the MSE `loss`; without, it generates (see `predict`).
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, num_subjects)`, *optional*): instead of `subject_index`
                (FaceFormer's own input; mixing weights work too).
            num_frames (`int` or `torch.LongTensor` of shape `(B,)`, *optional*): frames to generate without `labels`;
                by default from the audio duration (`frame_rate`).
            teacher_forcing (`bool`, defaults to `True`): with `labels`, decode in parallel from the ground-truth motion
                shifted by one frame; `False` runs the autoregressive loop as the original trains. As in the original,
                the first teacher-forced input is `vertice_map(0)` (its bias) plus the style, while the autoregressive
                loop starts from the style alone.
            use_cache (`bool`, *optional*): for the autoregressive loop, the cached one-frame-per-step decoder (default
                without `labels`) or the original's naive re-decoding of the prefix (default with `labels`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        batch = input_values.shape[0]

        if labels is not None:
            labels = self._flat_vertices(labels, "labels", 3)
            if labels.shape[0] != batch:
                raise ValueError(f"labels has batch size {labels.shape[0]}, input_values {batch}.")
            if vertex_mask is not None:
                if vertex_mask.shape != labels.shape[:2]:
                    raise ValueError(
                        f"vertex_mask must have shape {tuple(labels.shape[:2])}, got {tuple(vertex_mask.shape)}."
                    )
                vertex_mask = vertex_mask.bool()
                if bool((vertex_mask[:, 1:] & ~vertex_mask[:, :-1]).any()):
                    raise ValueError("vertex_mask must be right-padded: ones for the real frames, then zeros.")
                num_frames = vertex_mask.sum(-1)
            else:
                num_frames = labels.shape[1]

        audio_features, frames = self.encode_audio(input_values, attention_mask, num_frames)
        total = max(frames)
        if labels is not None and total != labels.shape[1]:
            raise ValueError(f"labels has {labels.shape[1]} frames but the longest item has {total}.")
        if min(frames) < total:
            vertex_mask = lengths_to_mask(torch.tensor(frames, device=input_values.device), total)
        else:
            vertex_mask = None

        memory = self.audio_feature_map(audio_features)
        template = template.to(memory.dtype)
        if template.dim() == 1 or (template.dim() == 2 and template.shape[-1] == 3 and self.config.vertice_dim != 3):
            template = template[None]  # one template for the whole batch
        template = self._flat_vertices(template, "template", 2)
        if template.shape[0] == 1 and batch > 1:
            template = template.expand(batch, -1)
        if template.shape[0] != batch:
            raise ValueError(f"template has batch size {template.shape[0]}, input_values {batch}.")
        template = template.unsqueeze(1)  # (B, 1, V3)
        style = self._style(subject_index, subject_one_hot, batch, memory.device, memory.dtype)

        if labels is not None and teacher_forcing:
            previous = torch.cat([template, labels[:, :-1].to(memory.dtype)], dim=1) - template
            inputs = self._positional(self.vertice_map(previous) + style)
            hidden = self._decode(inputs, memory)
            motion = self.vertice_map_r(hidden)
        else:
            if use_cache is None:
                use_cache = labels is None
            loop = self._autoregress_cached if use_cache else self._autoregress_naive
            hidden, motion = loop(memory, style, total)
        vertices = motion + template

        loss = None
        if labels is not None:
            squared = (vertices.float() - labels.float()) ** 2
            if vertex_mask is None:
                loss = squared.mean()
            else:
                weights = vertex_mask[:, :, None].to(squared.dtype)
                loss = (squared * weights).sum() / (weights.sum() * squared.shape[-1])

        output = FaceFormerOutput(
            loss=loss,
            vertices=vertices,
            vertex_mask=vertex_mask,
            audio_features=audio_features,
            last_hidden_state=hidden,
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
        use_cache: bool = True,
        return_dict: bool | None = None,
    ) -> FaceFormerOutput | tuple:
        r"""Generate the animation autoregressively, one frame per step (call `.eval()` first, as the original test).

        `use_cache=True` (default) decodes each frame once with cached keys/values; `use_cache=False` is the original's
        naive loop (the whole prefix re-decoded every step), kept as the reference: both give the same vertices.
        Without `num_frames`, each clip gets floor(duration * frame_rate) frames. Returns `vertices` `(B, T, V*3)` and,
        for a batch of unequal clips, `vertex_mask`.
        """
        return self.forward(
            input_values,
            template,
            subject_index=subject_index,
            attention_mask=attention_mask,
            subject_one_hot=subject_one_hot,
            num_frames=num_frames,
            use_cache=use_cache,
            return_dict=return_dict,
        )

    generate = predict


__all__ = [
    "FaceFormerForAnimation",
    "FaceFormerOutput",
    "FaceFormerPreTrainedModel",
    "alibi_slopes",
    "alignment_mask",
    "biased_causal_mask",
    "periodic_positional_encoding",
]
