# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch FaceFormer (Fan et al., CVPR 2022) as a transformers model whose audio encoder is any wav2vec2-family model
loaded with `AutoModel`: a plain HuBERT / Wav2Vec2 / WavLM / Data2VecAudio checkpoint (the published baseline) or a
`Wav2SemFusedEncoder` checkpoint (baseline + Wav2Sem). Swapping one for the other changes nothing else: the encoder's
`last_hidden_state` (F_p, or the fused F_d) goes through FaceFormer's own `audio_feature_map`, which plays FC2 of
Wav2Sem as in the official port.

Read top to bottom: outputs, masks and encodings, pre-trained base class, model. What every animation model shares
(the audio encoder contract, audio at the vertex rate, speaking styles, templates, freezing, the saved feature
extractor) is in `modeling_animation.py`. Imports only torch, transformers and the sibling files, so the file doubles
as Hub remote code. Module names follow the original
(`audio_encoder`, `audio_feature_map`, `vertice_map`, `transformer_decoder`, `vertice_map_r`, `obj_vector`).

Shapes: B batch, L samples, N conv frames (50 Hz), T vertex frames, k audio frames per vertex frame (1 VOCASET,
2 BIWI), S = k*T aligned audio frames, C encoder width, d decoder width, H heads, V3 = V*3 flattened vertices.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init

from .configuration_faceformer import FaceFormerConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel, masked_mean_squared_error


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FaceFormerOutput(AnimationOutput):
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


class CachedAlignedDecoder:
    r"""FaceFormer's decoder (an `nn.TransformerDecoder` of post-LN layers with the biased causal self-attention and
    the alignment cross-attention) run one frame per step: the self-attention keys/values are kept per layer, the
    cross-attention keys/values of the whole memory are projected once, and step i attends only to its aligned audio
    frames `[k*i, k*i + k)` (exactly what the alignment mask leaves) with one row of the temporal bias. Gives the same
    hidden states as re-decoding the whole prefix every step. CodeTalker's predictor decodes the same way.

    Args:
        decoder (`nn.TransformerDecoder`): the decoder (`batch_first=True`).
        memory (`torch.FloatTensor` of shape `(B, k*T, d)`): the audio memory.
        num_frames (`int`): T, the frames to decode.
        num_heads / period / frames_per_vertex: the decoder's heads, the temporal-bias period and k.
        training (`bool`): whether attention dropout applies (the model's `training`).
    """

    def __init__(
        self,
        decoder: nn.TransformerDecoder,
        memory: torch.Tensor,
        num_frames: int,
        num_heads: int,
        period: int,
        frames_per_vertex: int,
        training: bool,
    ):
        self.decoder, self.layers = decoder, list(decoder.layers)
        self.batch, _, self.width = memory.shape
        self.heads, self.k, self.training = num_heads, frames_per_vertex, training
        self.bias_table = temporal_bias_by_distance(num_heads, num_frames, period, memory.device, memory.dtype)
        d = self.width
        self.memory_kv = []
        for layer in self.layers:
            attention = layer.multihead_attn
            key_value = F.linear(memory, attention.in_proj_weight[d:], attention.in_proj_bias[d:])
            self.memory_kv.append(tuple(self._split_heads(t) for t in key_value.chunk(2, dim=-1)))
        self.self_kv: list = [None] * len(self.layers)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, n, d) -> (B, H, n, hd)
        return x.view(self.batch, x.shape[1], self.heads, self.width // self.heads).transpose(1, 2)

    def _attend(self, attention: nn.MultiheadAttention, query, keys, values, bias) -> torch.Tensor:
        d = self.width
        q = self._split_heads(F.linear(query, attention.in_proj_weight[:d], attention.in_proj_bias[:d]))
        out = F.scaled_dot_product_attention(
            q, keys, values, attn_mask=bias, dropout_p=attention.dropout if self.training else 0.0
        )
        return attention.out_proj(out.transpose(1, 2).reshape(self.batch, 1, d))

    def step(self, step_input: torch.Tensor, index: int) -> torch.Tensor:
        """Decode frame `index` from its input `(B, 1, d)` (embedding + style + positional encoding): `(B, 1, d)`."""
        d, k = self.width, self.k
        hidden = step_input
        bias = self.bias_table[:, : index + 1].flip(-1)[:, None, :]  # (H, 1, i+1): distances i .. 0
        for number, layer in enumerate(self.layers):
            attention = layer.self_attn
            key, value = (
                self._split_heads(t)
                for t in F.linear(hidden, attention.in_proj_weight[d:], attention.in_proj_bias[d:]).chunk(2, -1)
            )
            if self.self_kv[number] is not None:
                key = torch.cat([self.self_kv[number][0], key], 2)
                value = torch.cat([self.self_kv[number][1], value], 2)
            self.self_kv[number] = (key, value)
            hidden = layer.norm1(hidden + layer.dropout1(self._attend(attention, hidden, key, value, bias)))
            memory_key, memory_value = self.memory_kv[number]
            aligned = slice(k * index, k * index + k)
            memory_key, memory_value = memory_key[:, :, aligned], memory_value[:, :, aligned]
            cross = self._attend(layer.multihead_attn, hidden, memory_key, memory_value, None)
            hidden = layer.norm2(hidden + layer.dropout2(cross))
            feed_forward = layer.linear2(layer.dropout(layer.activation(layer.linear1(hidden))))
            hidden = layer.norm3(hidden + layer.dropout3(feed_forward))
        if self.decoder.norm is not None:
            hidden = self.decoder.norm(hidden)
        return hidden


class FaceFormerDecoderMixin:
    """FaceFormer's decoder pieces for a model that has `transformer_decoder`, `ppe_dropout`, a `_mask_cache` dict and
    a config with `period`, `feature_dim`, `num_attention_heads`, `max_seq_len` and `audio_frames_per_vertex_frame`:
    the periodic positional encoding, the temporal-bias mask and the full (masked) decoder pass. FaceFormer and
    CodeTalker's predictor share them."""

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

    def _decode(self, inputs: torch.Tensor, memory: torch.Tensor, frames_per_vertex: int | None = None) -> torch.Tensor:
        """The full decoder over `(B, n, d)` inputs (teacher forcing and the naive loop); frame t attends to memory
        frames `[k*t, k*t + k)`, k = `frames_per_vertex` (default `config.audio_frames_per_vertex_frame`)."""
        batch, length, _ = inputs.shape
        heads = self.config.num_attention_heads
        tgt_mask = self.biased_mask(length, inputs.device, inputs.dtype)
        tgt_mask = tgt_mask[None].expand(batch, -1, -1, -1).reshape(batch * heads, length, length)
        if frames_per_vertex is None:
            frames_per_vertex = self.config.audio_frames_per_vertex_frame
        memory_mask = alignment_mask(length, memory.shape[1], frames_per_vertex, device=inputs.device)
        return self.transformer_decoder(inputs, memory, tgt_mask=tgt_mask, memory_mask=memory_mask)


# ----------------------------------------------------------------------------------------------------------------------
# Pre-trained base class
# ----------------------------------------------------------------------------------------------------------------------


class FaceFormerPreTrainedModel(AnimationPreTrainedModel):
    """Weight initialisation (PyTorch's defaults, as the original; zero output layer) and the Hub plumbing."""

    config: FaceFormerConfig
    config_class = FaceFormerConfig
    base_model_prefix = "faceformer"
    resample_point = "conv"  # FaceFormer interpolates the conv features, before the encoder's Transformer layers
    _supports_flash_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is getattr(self, "vertice_map_r", None):
            # Zero output layer: the untrained model predicts the template (FaceFormer's initialisation).
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class FaceFormerForAnimation(FaceFormerDecoderMixin, FaceFormerPreTrainedModel):
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

    def __init__(self, config: FaceFormerConfig, audio_encoder: nn.Module | None = None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)

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

    def _style(self, subject_index, subject_one_hot, batch: int, device, dtype) -> torch.Tensor:
        """Speaker style embedding `(B, 1, d)`: `obj_vector` of the one-hot (or mixing weights)."""
        one_hot = self.style_one_hot(subject_index, subject_one_hot, batch, device, dtype)
        return self.obj_vector(one_hot).unsqueeze(1)

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
        decoder = CachedAlignedDecoder(
            self.transformer_decoder, memory, num_frames, config.num_attention_heads, config.period,
            config.audio_frames_per_vertex_frame, self.training,
        )
        table = periodic_positional_encoding(config.period, config.feature_dim, style.device, style.dtype)
        step_input = self.ppe_dropout(style + table[0])
        hiddens, motions = [], []
        for i in range(num_frames):
            hidden = decoder.step(step_input, i)
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
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames
        )
        batch = input_values.shape[0]
        total = max(frames)

        memory = self.audio_feature_map(audio_features)
        template = self.prepare_template(template, batch, memory.dtype).unsqueeze(1)  # (B, 1, V3)
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

        loss = None if labels is None else masked_mean_squared_error(vertices, labels, vertex_mask)

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
    "CachedAlignedDecoder",
    "FaceFormerDecoderMixin",
    "FaceFormerForAnimation",
    "FaceFormerOutput",
    "FaceFormerPreTrainedModel",
    "alibi_slopes",
    "alignment_mask",
    "biased_causal_mask",
    "periodic_positional_encoding",
]
