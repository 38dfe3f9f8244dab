# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch Wav2Sem (CVPR 2025): an audio encoder whose mean-pooled sentence vector F_s is aligned with a text
encoder's sentence embedding, and the fused encoder `F_d = FC2(FC1(F_s) + F_p)` that plugs it into any HuBERT /
Wav2Vec2 / WavLM / Data2VecAudio backbone.

Read top to bottom: outputs, input checks, layers, pre-trained base class, models. Imports only torch, transformers
and the sibling configuration and speech-backbone files, so the file doubles as Hub remote code.

Shapes: B batch, L samples, T conv frames, N encoder frames (N == T), H hidden size, D semantic (teacher) size.
"""

import copy
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from transformers import AutoFeatureExtractor, AutoModel, PreTrainedConfig, PreTrainedModel, Wav2Vec2FeatureExtractor
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_wav2sem import Wav2SemConfig, Wav2SemFusedConfig
from .modeling_speech_backbone import (
    build_speech_backbone,
    check_whisper_feature_extractor,
    freeze_conv_front_end,
    is_whisper,
    raw_audio_feature_extractor,
    speech_encoder_of,
    whisper_encoder_frames,
    whisper_frame_lengths,
)


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Wav2SemModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(B, N, H)`):
        Frame features of the last Transformer layer (50 Hz for 16 kHz audio).
    semantic_embeds (`torch.FloatTensor` of shape `(B, D)`):
        The sentence vector F_s: mean over the valid frames, through the projection head if any, in the teacher's
        space (directly comparable with the teacher's [CLS] or mean vector). Always fp32, also for a bf16 model or
        under autocast: the mean over frames is accumulated in fp32.
    standardized_embeds (`torch.FloatTensor` of shape `(B, D)`):
        The same vector before the folded-in target de-standardisation (`semantic_embeds = standardized_embeds *
        target_scale + target_shift`); equal to `semantic_embeds` when no target statistics were set. Training losses
        on standardised targets use it.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        Input of every Transformer layer and the final output, each `(B, N, H)`; with `output_hidden_states=True`.
    attentions (`tuple(torch.FloatTensor)`, *optional*):
        Attention weights of every layer, each `(B, heads, N, N)`; with `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    semantic_embeds: torch.FloatTensor | None = None
    standardized_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class Wav2SemFusedEncoderOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(B, N, C)`):
        The fused features F_d = FC2(FC1(F_s) + F_p); C is the backbone's width unless `config.output_dim` is set.
    backbone_hidden_state (`torch.FloatTensor` of shape `(B, N, C_p)`):
        The backbone's own last hidden state F_p.
    semantic_embeds (`torch.FloatTensor` of shape `(B, D)`):
        The frozen Wav2Sem sentence vector F_s.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        The backbone's hidden states, with `output_hidden_states=True`.
    attentions (`tuple(torch.FloatTensor)`, *optional*):
        The backbone's attention weights, with `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    backbone_hidden_state: torch.FloatTensor | None = None
    semantic_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Input checks and small helpers
# ----------------------------------------------------------------------------------------------------------------------


def validate_audio_inputs(
    input_values: torch.Tensor, attention_mask: torch.Tensor | None, min_samples: int
) -> torch.Tensor | None:
    """Check a batch of raw audio and return the per-item lengths in samples (`None` when unpadded).

    Args:
        input_values: `(B, L)` float mono audio, right-padded.
        attention_mask: `(B, L)`, 1 on real samples, or `None`.
        min_samples: the shortest valid utterance (the conv stack's receptive field, 400 samples by default).

    Raises:
        ValueError: with the problem named, for every input the model cannot encode faithfully.
    """
    if not torch.is_tensor(input_values):
        raise ValueError(f"input_values must be a torch.Tensor of shape (batch, samples), got {type(input_values)}.")
    if input_values.dim() == 3:
        raise ValueError(
            f"input_values has shape {tuple(input_values.shape)}: each item must be mono 1-D audio, so the batch is "
            "(batch, samples). Down-mix multi-channel (e.g. stereo) audio first, for instance by averaging channels."
        )
    if input_values.dim() != 2:
        raise ValueError(
            f"input_values must have shape (batch, samples), got {tuple(input_values.shape)}; "
            "for a single utterance pass input_values[None]."
        )
    if input_values.shape[0] == 0:
        raise ValueError("input_values is an empty batch (0 utterances).")
    if input_values.shape[1] == 0:
        raise ValueError("input_values is empty (0 samples).")
    if attention_mask is not None and not torch.is_tensor(attention_mask):
        raise ValueError(f"attention_mask must be a torch.Tensor of shape (batch, samples), got {type(attention_mask)}.")
    if not input_values.is_floating_point():
        raise ValueError(f"input_values must be floating point audio, got dtype {input_values.dtype}.")
    if torch.compiler.is_compiling():
        return None if attention_mask is None else attention_mask.sum(-1)
    finite = torch.isfinite(input_values).all(dim=-1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"input_values contains NaN or Inf (batch items {bad}).")
    if attention_mask is None:
        lengths = None
        shortest = input_values.shape[1]
    else:
        if attention_mask.shape != input_values.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_values has shape "
                f"{tuple(input_values.shape)}; they must match."
            )
        mask = attention_mask.bool()
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("attention_mask must be right-padded: ones for the real samples, then zeros.")
        lengths = mask.sum(-1)
        shortest = int(lengths.min())
    if shortest < min_samples:
        sizes = [input_values.shape[1]] * input_values.shape[0] if lengths is None else lengths.tolist()
        short = {i: n for i, n in enumerate(sizes) if n < min_samples}
        raise ValueError(
            f"Audio too short: the model needs at least {min_samples} samples (its receptive field), but batch items "
            f"have {short} samples."
        )
    if lengths is not None and int(lengths.min()) == input_values.shape[1]:
        return None
    return lengths


def owns_tensors(module: nn.Module) -> bool:
    """Whether a module holds parameters or buffers itself, not only through its children."""
    return any(True for _ in module.parameters(recurse=False)) or any(
        buffer is not None for buffer in module.buffers(recurse=False)
    )


def resolve_output_flags(config, output_attentions, output_hidden_states, return_dict) -> tuple[bool, bool, bool]:
    """The `forward` output switches, each falling back to the config's value when `None`."""
    return (
        config.output_attentions if output_attentions is None else output_attentions,
        config.output_hidden_states if output_hidden_states is None else output_hidden_states,
        config.return_dict if return_dict is None else return_dict,
    )


def conv_output_lengths(input_lengths: torch.Tensor, kernels, strides) -> torch.Tensor:
    """Frames produced by a stack of unpadded 1-D convolutions for `input_lengths` samples (any integer shape)."""
    for kernel, stride in zip(kernels, strides):
        input_lengths = torch.div(input_lengths - kernel, stride, rounding_mode="floor") + 1
    return input_lengths


def autograd_through(inputs: torch.Tensor, modules) -> bool:
    """Whether autograd records a pass of `inputs` through `modules` (grad mode, and the input or a parameter needs it)."""
    return torch.is_grad_enabled() and (
        inputs.requires_grad or any(p.requires_grad for module in modules for p in module.parameters())
    )


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """`(B,)` lengths -> `(B, max_length)` bool mask, True on the first `lengths[b]` positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of `(B, N, H)` features (in fp32), counting only frames where the `(B, N)` mask is True."""
    hidden_states = hidden_states.float()
    if mask is None:
        return hidden_states.mean(dim=1)
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def normalize_audio(input_values: torch.Tensor, lengths: torch.Tensor | None, eps: float = 1e-7) -> torch.Tensor:
    """Zero-mean unit-variance per utterance over its real samples, as `Wav2Vec2FeatureExtractor(do_normalize=True)`.

    `(B, L)` -> `(B, L)`; padded samples are set to 0.
    """
    x = input_values.float()
    if lengths is None:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + eps)
    mask = lengths_to_mask(lengths, x.shape[-1]).to(x.dtype)
    count = lengths.to(x.dtype).unsqueeze(-1)
    mean = (x * mask).sum(-1, keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps) * mask


# ----------------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------------


def cpu_compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """The dtype an op on `tensor` computes in on CPU: the autocast dtype when CPU autocast is on, else its own."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else tensor.dtype


def conv_taps(weight: torch.Tensor) -> torch.Tensor:
    """A Conv1d weight `(C, C_in, k)` as the matrix `(k C_in, C)` that multiplies time-major windows (tap-major rows)."""
    out_channels, in_channels, kernel = weight.shape
    return weight.permute(2, 1, 0).reshape(kernel * in_channels, out_channels)


def strided_windows(item: torch.Tensor, kernel: int, stride: int, frames: int):
    """Frame t's receptive field of a time-major `(T_in, C_in)` item (contiguous) is the k C_in numbers from row s t,
    so the windows are a strided view; a matmul takes it as it is when its rows do not overlap (k <= s). Yields
    `(first tap, (T, taps C_in) view)` for groups of at most s consecutive taps: ceil(k / s) views, no copy."""
    channels = item.shape[1]
    for first in range(0, kernel, stride):
        taps = min(stride, kernel - first)
        yield first, item[first:].as_strided((frames, taps * channels), (stride * channels, 1))


def time_major_conv(
    hidden_states: torch.Tensor, taps: torch.Tensor, kernel: int, stride: int, bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """An unpadded Conv1d on time-major features: `(B, T_in, C_in)` (contiguous) x taps `(k C_in, C)` (`conv_taps`)
    (+ bias `(C,)`) -> `(B, T, C)`, written into `out` when given (`(B, T, C)`, each item's `(T, C)` contiguous).

    One matmul per group of taps of `strided_windows` (two for k = 3, s = 2), accumulated in place: no window copy and
    no layout change. On a 2-core Xeon with AMX, oneDNN's channel-major bf16 conv runs the feature encoder's 512-channel
    layers (10 s of audio, whole) at 460-870 GFLOP/s, these matmuls at 1,770-2,860 (x2-x6); in fp32 the two run at
    240-330 GFLOP/s both.
    """
    batch, length, channels = hidden_states.shape
    frames = (length - kernel) // stride + 1
    if out is None:
        out = hidden_states.new_empty(batch, frames, taps.shape[1])
    for item, item_out in zip(hidden_states, out):
        for first, windows in strided_windows(item, kernel, stride, frames):
            rows = taps[first * channels : first * channels + windows.shape[1]]
            if first > 0:
                item_out.addmm_(windows, rows)
            elif bias is None:
                torch.mm(windows, rows, out=item_out)
            else:
                torch.addmm(bias, windows, rows, out=item_out)
    return out


class TimeMajorConv1d(torch.autograd.Function):
    """`time_major_conv` with its backward pass, for training on CPU: `(B, T_in, C_in)` x weight `(C, C_in, k)`
    (+ bias `(C,)`) -> `(B, T, C)`.

    The weight's gradient is the windows' transpose times the output's gradient, and the input's gradient the output's
    gradient times the taps' transpose, added into the same strided views: matmuls on views, as in the forward pass.
    On a 2-core Xeon (no AMX) oneDNN's channel-major conv backward runs at 85-155 GFLOP/s, these matmuls near the
    matmul rate: the feature encoder's forward + backward on real batches is x1.23 faster (small preset; x1.14 paper
    preset, x1.09 under bf16 autocast), the pretraining step x1.10. Under CPU autocast the matmuls run in the autocast
    dtype, as `nn.Conv1d`'s do; the gradients come back in the dtypes of the inputs.
    """

    @staticmethod
    def forward(ctx, hidden_states, weight, bias, stride: int):
        dtype = cpu_compute_dtype(hidden_states)
        ctx.dtypes = (hidden_states.dtype, weight.dtype, None if bias is None else bias.dtype)
        hidden_states = hidden_states.to(dtype).contiguous()
        weight = weight.to(dtype)
        kernel = weight.shape[2]
        output = time_major_conv(hidden_states, conv_taps(weight), kernel, stride, None if bias is None else bias.to(dtype))
        ctx.save_for_backward(hidden_states, weight)
        ctx.stride = stride
        return output

    @staticmethod
    def backward(ctx, grad_output):
        hidden_states, weight = ctx.saved_tensors
        out_channels, in_channels, kernel = weight.shape
        frames, stride = grad_output.shape[1], ctx.stride
        input_dtype, weight_dtype, bias_dtype = ctx.dtypes
        grad_output = grad_output.to(weight.dtype).contiguous()
        taps = conv_taps(weight)
        grad_input = grad_taps = grad_bias = None
        if ctx.needs_input_grad[0]:
            # The first group of taps covers rows [0, s T) once each (k >= s): written, not added; the rest is zeroed.
            grad_input = torch.empty_like(hidden_states) if kernel >= stride else torch.zeros_like(hidden_states)
            grad_input[:, stride * frames :] = 0
            for item_grad, item_grad_output in zip(grad_input, grad_output):
                for first, windows in strided_windows(item_grad, kernel, stride, frames):
                    rows = taps[first * in_channels : first * in_channels + windows.shape[1]].T
                    if first == 0 and kernel >= stride:
                        torch.mm(item_grad_output, rows, out=windows)
                    else:
                        windows.addmm_(item_grad_output, rows)
            grad_input = grad_input.to(input_dtype)
        if ctx.needs_input_grad[1]:
            grad_taps = taps.new_zeros(taps.shape, dtype=torch.float32)  # summed over the items in fp32
            for item, item_grad_output in zip(hidden_states, grad_output):
                for first, windows in strided_windows(item, kernel, stride, frames):
                    rows = slice(first * in_channels, first * in_channels + windows.shape[1])
                    grad_taps[rows] += windows.T @ item_grad_output
            grad_taps = grad_taps.view(kernel, in_channels, out_channels).permute(2, 1, 0)
            grad_taps = grad_taps.to(weight_dtype).contiguous()
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum((0, 1)).to(bias_dtype)
        return grad_input, grad_taps, grad_bias, None


class Wav2SemConvLayer(nn.Module):
    """One conv layer of the feature encoder: Conv1d -> norm (if any) -> activation. `(B, C_in, T_in)` -> `(B, C, T)`.

    With `feat_extract_norm="group"` only layer 0 has a norm, a GroupNorm with one group per channel, i.e. statistics
    over time. Those statistics would include padding, so with a frame mask they are taken over the real frames only.
    """

    def __init__(self, config: Wav2SemConfig, layer_id: int):
        super().__init__()
        in_dim = config.conv_dim[layer_id - 1] if layer_id > 0 else 1
        out_dim = config.conv_dim[layer_id]
        self.conv = nn.Conv1d(
            in_dim, out_dim, config.conv_kernel[layer_id], stride=config.conv_stride[layer_id], bias=config.conv_bias
        )
        if config.feat_extract_norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim, eps=config.layer_norm_eps)
        elif layer_id == 0:
            self.layer_norm = nn.GroupNorm(out_dim, out_dim, affine=True)
        else:
            self.layer_norm = None
        self.activation = ACT2FN[config.feat_extract_activation]
        # In-place GELU (torch's own kernel), for inference: see `_activate`.
        self._gelu_ = getattr(torch._C._nn, "gelu_", None) if config.feat_extract_activation == "gelu" else None

    def _activate(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The activation, in place when autograd does not need its input (inference): the input is this layer's own
        fresh output, and the first layers' outputs are large enough (tens of MB) that allocating a second copy, page
        faults included, costs more than the GELU itself (27 vs 6 ms for layer 0 on 10 s, measured on a 2-core CPU)."""
        if self._gelu_ is not None and not (torch.is_grad_enabled() and hidden_states.requires_grad):
            return self._gelu_(hidden_states)
        return self.activation(hidden_states)

    def _folded_conv_and_norm(
        self, audio: torch.Tensor, input_lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conv1d over raw audio followed by GroupNorm with one group per channel, as one batched matmul: returns the
        audio windows `(B, T, k)` (a view), the folded weights `(B, C, k)` and shift `(B, C, 1)` for `_apply_folded`.
        Statistics are over each item's real frames.

        The conv is linear in the audio windows x_t (k samples each), so each channel's mean and variance over time
        follow from the windows' k-vector mean m and k x k covariance S: mean_c = w_c.m (+ b_c), var_c = w_c' S w_c
        (in float64, no cancellation; a conv bias cancels out). The norm then folds into the conv: one `baddbmm` with
        the rescaled weights writes the normalised output, instead of a conv, a statistics pass and an affine pass over
        the layer's large (C x T) output (x1.7 faster for this layer on a 2-core CPU).
        """
        conv, norm = self.conv, self.layer_norm
        windows = audio[:, 0].unfold(-1, conv.kernel_size[0], conv.stride[0])  # (B, T, k), a view
        exact = windows.double()
        if input_lengths is None:
            weights = exact.new_ones(windows.shape[:2])
        else:
            lengths = conv_output_lengths(input_lengths, conv.kernel_size, conv.stride)
            weights = lengths_to_mask(lengths, windows.shape[1]).double()
        count = weights.sum(1).clamp(min=1.0)[:, None]  # (B, 1)
        window_mean = torch.einsum("btk,bt->bk", exact, weights) / count  # (B, k)
        centred = (exact - window_mean[:, None]) * weights[..., None].sqrt()
        covariance = centred.transpose(1, 2) @ centred / count[..., None]  # (B, k, k)
        weight = conv.weight[:, 0].double()  # (C, k)
        mean = window_mean @ weight.T  # (B, C)
        variance = torch.einsum("ck,bkl,cl->bc", weight, covariance, weight).clamp(min=0.0)
        scale = torch.rsqrt(variance + norm.eps) * norm.weight.double()  # (B, C)
        shift = norm.bias.double() - mean * scale
        if conv.bias is not None:  # cancels out, but stays in the graph with its exact gradient, zero (as DDP expects)
            shift = shift + 0.0 * conv.bias.double()
        dtype = audio.dtype
        folded = weight[None] * scale[..., None]  # (B, C, k)
        return windows, folded.to(dtype), shift.to(dtype)[..., None]

    @staticmethod
    def _apply_folded(
        windows: torch.Tensor, folded: torch.Tensor, shift: torch.Tensor, time_major: bool = False
    ) -> torch.Tensor:
        """`(B, T, k)` windows -> `(B, C, T)` normalised conv output (time-major: `(B, T, C)`), with the weights of
        `_folded_conv_and_norm`."""
        if time_major:
            return torch.baddbmm(shift.transpose(1, 2), windows, folded.transpose(1, 2))
        return torch.baddbmm(shift, folded, windows.transpose(1, 2))

    def forward(self, hidden_states: torch.Tensor, input_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`input_lengths` `(B,)`: real frames of each item of the input, or `None` when nothing is padded."""
        if isinstance(self.layer_norm, nn.GroupNorm):  # layer 0 only: its input is the raw audio
            return self._activate(self._apply_folded(*self._folded_conv_and_norm(hidden_states, input_lengths)))
        hidden_states = self.conv(hidden_states)
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        return self._activate(hidden_states)

    def inference_taps(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The conv's taps (`conv_taps`) and bias in `dtype`, for `conv_time_major` without autograd."""
        bias = self.conv.bias
        return conv_taps(self.conv.weight.to(dtype)), None if bias is None else bias.to(dtype)

    def conv_time_major(
        self, hidden_states: torch.Tensor, out: torch.Tensor | None = None, taps: tuple | None = None
    ) -> torch.Tensor:
        """This layer's conv on time-major features, `(B, T_in, C_in)` -> `(B, T, C)`: `TimeMajorConv1d` when autograd
        records it, else `time_major_conv` in the CPU autocast dtype (if any), written into `out` when given, with
        `taps` from `inference_taps` when given (a loop over chunks makes them once)."""
        conv = self.conv
        if autograd_through(hidden_states, [conv]):
            return TimeMajorConv1d.apply(hidden_states, conv.weight, conv.bias, conv.stride[0])
        dtype = cpu_compute_dtype(hidden_states)
        weight, bias = taps or self.inference_taps(dtype)
        return time_major_conv(hidden_states.to(dtype).contiguous(), weight, conv.kernel_size[0], conv.stride[0], bias, out)

    def forward_time_major(self, hidden_states: torch.Tensor, input_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The same layer on time-major features, `(B, T_in, C_in)` -> `(B, T, C)` (layer 0: audio `(B, L, 1)`): the
        feature encoder's path on CPU."""
        if isinstance(self.layer_norm, nn.GroupNorm):
            windows, folded, shift = self._folded_conv_and_norm(hidden_states.transpose(1, 2), input_lengths)
            return self._activate(self._apply_folded(windows, folded, shift, time_major=True))
        hidden_states = self.conv_time_major(hidden_states)
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        return self._activate(hidden_states)


class Wav2SemFeatureEncoder(nn.Module):
    """The conv feature encoder: raw audio `(B, L)` -> conv features `(B, C, T)`, hop 320 and receptive field 400.

    On CPU the layers run time-major (`Wav2SemConvLayer.forward_time_major`: matmuls on strided windows) and the result
    is a transposed view of a `(B, T, C)` tensor, the layout the feature projection takes; other devices run the
    channel-major `nn.Conv1d` path. Both give the same numbers to float rounding.
    """

    # Output frames of layer 1 per chunk when layers 0 and 1 run chunk by chunk (no autograd through them, e.g. in
    # inference or with a frozen feature encoder; see `_first_two_layers`).
    chunk_frames = 2048
    # False: the channel-major `nn.Conv1d` path on CPU too. Time-major, the paper preset's conv stack on 10 s of audio
    # (2-core Xeon with AMX) runs x2.4 faster in bf16 (40 vs 99 ms with bf16 weights, 43 vs 105 under autocast) and
    # x1.07 in fp32 (175 vs 186 ms); its training (`TimeMajorConv1d`) x1.2 on a Xeon without AMX.
    time_major = True

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.conv_layers = nn.ModuleList([Wav2SemConvLayer(config, i) for i in range(config.num_feat_extract_layers)])

    def _first_two_layers(self, audio: torch.Tensor, input_lengths: torch.Tensor | None, time_major: bool) -> torch.Tensor:
        """Layers 0 and 1 over time chunks, `(B, 1, L)` -> `(B, C, T_1)` (time-major: `(B, T_1, C)`), without autograd,
        for a group-norm layer 0.

        Layer 0's statistics come from the whole utterance (its folded weights), and both layers are local in time, so
        chunks give exactly the unchunked output; but layer 0's output (the largest tensor of the model, 65 MB for
        10 s) never exists whole, and each chunk is still in cache when layer 1 reads it.
        """
        first, second = self.conv_layers[0], self.conv_layers[1]
        windows, folded, shift = first._folded_conv_and_norm(audio, input_lengths)
        kernel, stride = second.conv.kernel_size[0], second.conv.stride[0]
        frames, channels = (windows.shape[1] - kernel) // stride + 1, second.conv.out_channels
        if time_major:
            output = windows.new_empty(windows.shape[0], frames, channels, dtype=cpu_compute_dtype(windows))
            taps = second.inference_taps(output.dtype)
        else:
            output = windows.new_empty(windows.shape[0], channels, frames)
        for start in range(0, frames, self.chunk_frames):
            end = min(start + self.chunk_frames, frames)
            window_chunk = windows[:, start * stride : (end - 1) * stride + kernel]
            chunk = first._activate(first._apply_folded(window_chunk, folded, shift, time_major))
            if not time_major:
                output[:, :, start:end] = second(chunk)
                continue
            target = output[:, start:end]
            activated = second._activate(second.conv_time_major(chunk, out=target, taps=taps))
            if second._gelu_ is None:  # an activation without an in-place kernel returned a new tensor
                target.copy_(activated)
        return output

    def forward(self, input_values: torch.Tensor, input_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`input_lengths` `(B,)`: real samples of each item, or `None` when nothing is padded."""
        time_major = self.time_major and input_values.device.type == "cpu"
        hidden_states = input_values[..., None] if time_major else input_values[:, None]
        layers = list(self.conv_layers)
        if (
            not autograd_through(hidden_states, layers[:2])
            and len(layers) > 1
            and isinstance(layers[0].layer_norm, nn.GroupNorm)
            and layers[1].layer_norm is None
        ):
            hidden_states = self._first_two_layers(input_values[:, None], input_lengths, time_major)
            if input_lengths is not None:
                for layer in layers[:2]:
                    input_lengths = conv_output_lengths(input_lengths, layer.conv.kernel_size, layer.conv.stride)
            layers = layers[2:]
        for layer in layers:
            if time_major:
                hidden_states = layer.forward_time_major(hidden_states, input_lengths)
            else:
                hidden_states = layer(hidden_states, input_lengths)
            if input_lengths is not None:
                input_lengths = conv_output_lengths(input_lengths, layer.conv.kernel_size, layer.conv.stride)
        return hidden_states.transpose(1, 2) if time_major else hidden_states


class Wav2SemFeatureProjection(nn.Module):
    """LayerNorm -> Linear -> dropout: conv (or front-end) features `(B, T, C)` -> `(B, T, H)`."""

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.frame_input_size, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.frame_input_size, config.hidden_size)
        self.dropout = nn.Dropout(config.feat_proj_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.projection(self.layer_norm(hidden_states)))


class Wav2SemPositionalConvEmbedding(nn.Module):
    """Relative positions from a grouped, weight-normalised convolution over time: `(B, N, H)` -> `(B, N, H)`.

    Frames beyond an utterance's end must be zero on input (the encoder does it), so that a padded utterance sees the
    same zero padding as when it is alone.
    """

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        kernel = config.num_conv_pos_embeddings
        conv = nn.Conv1d(
            config.hidden_size,
            config.hidden_size,
            kernel_size=kernel,
            padding=kernel // 2,
            groups=config.num_conv_pos_embedding_groups,
        )
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_pad_remove = 1 if kernel % 2 == 0 else 0
        self.activation = ACT2FN[config.feat_extract_activation]

    def _narrow_bf16_groups(self, hidden_states: torch.Tensor) -> bool:
        """Whether this conv would run in bf16 on CPU with fewer than 16 channels per group. oneDNN (torch 2.13) gets
        such grouped bf16 convs wrong on AMX CPUs: relative error about 1 for 2-12 channels per group with kernels 16
        and 128 (measured on a 2-core Xeon with AMX; 16 and more channels per group, as in every real preset, are
        right). Only tiny configs have so few, and they run this conv in fp32 instead."""
        conv = self.conv
        return (
            hidden_states.device.type == "cpu"
            and cpu_compute_dtype(conv.parametrizations.weight.original1) == torch.bfloat16
            and conv.in_channels // conv.groups < 16
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The conv runs as a 2-D conv on a `(B, H, 1, N)` view of the time-major input, which is channels-last, so
        oneDNN keeps that layout instead of transposing the input and the output. On a 2-core Xeon with AMX, vs the
        channel-major Conv1d: forward + backward of the small preset (batch 8, 600 frames) x1.13 faster in fp32 and
        x1.57 under bf16 autocast; inference x1.34-1.39 there, x0.95-1.10 on the paper preset (batch 1, 10 s)."""
        conv = self.conv

        def conv2d(inputs, weight, bias):
            return nn.functional.conv2d(inputs, weight[:, :, None], bias, padding=(0, conv.padding[0]), groups=conv.groups)

        inputs = hidden_states.transpose(1, 2)[:, :, None]
        if self._narrow_bf16_groups(hidden_states):
            with torch.autocast("cpu", enabled=False):
                bias = None if conv.bias is None else conv.bias.float()
                output = conv2d(inputs.float(), conv.weight.float(), bias).to(torch.bfloat16)  # the dtype it came in
        else:
            output = conv2d(inputs, conv.weight, conv.bias)
        output = output[:, :, 0]
        if self.num_pad_remove:
            output = output[:, :, : -self.num_pad_remove]
        return self.activation(output).transpose(1, 2)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. q, k, v `(B, heads, N, d)`; boolean mask `(B, 1, 1, N)` True on keys to attend.

    Returns the output `(B, N, heads, d)` and the weights `(B, heads, N, N)`.
    """
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class Wav2SemAttention(nn.Module):
    """Multi-head self-attention with the implementation chosen by `config._attn_implementation` (SDPA by default).

    `(B, N, H)` -> `(B, N, H)` and, when asked for (eager), the weights `(B, heads, N, N)`.
    """

    # Sequences up to this many frames train in bf16 on CPU with the eager kernel even under SDPA: SDPA's CPU flash
    # kernel differentiates bf16 slowly on short sequences (120 frames, batch 8, 6 heads: its backward takes 10x its
    # forward, and eager's forward + backward is x1.85 faster); the two break even near 200 frames, and above that
    # SDPA is faster (x1.7 at 450). Measured on a 2-core Xeon with AMX, torch 2.13. 0 turns this off.
    eager_training_max_frames = 192

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, frames, _ = hidden_states.shape
        shape = (batch, frames, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)

        attention_interface: Callable = eager_attention_forward
        if not output_attentions and self.config._attn_implementation not in (None, "eager"):
            if not self._short_bf16_cpu_training(query):
                attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                    self.config._attn_implementation, eager_attention_forward
                )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=False,
        )
        output = self.out_proj(output.reshape(batch, frames, -1))
        return output, weights if output_attentions else None

    def _short_bf16_cpu_training(self, query: torch.Tensor) -> bool:
        """Whether autograd records bf16 attention on CPU over at most `eager_training_max_frames` frames."""
        return (
            query.device.type == "cpu"
            and query.dtype == torch.bfloat16
            and query.requires_grad
            and torch.is_grad_enabled()
            and query.shape[2] <= self.eager_training_max_frames
        )


class Wav2SemFeedForward(nn.Module):
    """Linear -> activation -> dropout -> Linear -> dropout: `(B, N, H)` -> `(B, N, H)`."""

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]
        self.intermediate_dropout = nn.Dropout(config.activation_dropout)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.intermediate_dropout(self.intermediate_act_fn(self.intermediate_dense(hidden_states)))
        return self.output_dropout(self.output_dense(hidden_states))


class Wav2SemEncoderLayer(GradientCheckpointingLayer):
    """A Transformer layer, post-LN as wav2vec2-base (the official encoder) or pre-LN (`do_stable_layer_norm`)."""

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.attention = Wav2SemAttention(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = Wav2SemFeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        residual = hidden_states
        if self.pre_norm:
            hidden_states = self.layer_norm(hidden_states)
        hidden_states, weights = self.attention(hidden_states, attention_mask, output_attentions)
        hidden_states = residual + self.dropout(hidden_states)
        if self.pre_norm:
            hidden_states = hidden_states + self.feed_forward(self.final_layer_norm(hidden_states))
        else:
            hidden_states = self.layer_norm(hidden_states)
            hidden_states = self.final_layer_norm(hidden_states + self.feed_forward(hidden_states))
        return hidden_states, weights


class Wav2SemEncoder(nn.Module):
    """Positional conv + Transformer layers (with LayerDrop): `(B, N, H)` -> `(B, N, H)`."""

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        self.config = config
        self.pos_conv_embed = Wav2SemPositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList([Wav2SemEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        hidden_states: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        attention_mask = None
        if frame_mask is not None:
            # Zero the padded frames so the positional conv sees the zero padding an utterance alone would see.
            hidden_states = hidden_states * frame_mask.unsqueeze(-1).to(hidden_states.dtype)
            attention_mask = frame_mask[:, None, None, :]
        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)
        if not self.config.do_stable_layer_norm:
            hidden_states = self.layer_norm(hidden_states)
        hidden_states = self.dropout(hidden_states)

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if self.training and self.config.layerdrop > 0 and float(torch.rand([])) < self.config.layerdrop:
                if output_attentions:
                    all_attentions += (None,)
                continue
            hidden_states, weights = layer(hidden_states, attention_mask=attention_mask, output_attentions=output_attentions)
            if output_attentions:
                all_attentions += (weights,)
        if self.config.do_stable_layer_norm:
            hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return hidden_states, all_hidden_states, all_attentions


# ----------------------------------------------------------------------------------------------------------------------
# Pre-trained base class
# ----------------------------------------------------------------------------------------------------------------------


FEATURE_EXTRACTOR_FILE = "preprocessor_config.json"


def normalizing_feature_extractor(sampling_rate: int, return_attention_mask: bool = True) -> Wav2Vec2FeatureExtractor:
    """The feature extractor Wav2Sem is trained with: mono audio at `sampling_rate`, zero mean and unit variance per
    utterance, zero padding."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=return_attention_mask,
    )


class SavesFeatureExtractorMixin:
    """`save_pretrained` (and so `push_to_hub`) also writes the model's feature extractor (`preprocessor_config.json`,
    replacing any other), so every checkpoint loads with `AutoFeatureExtractor` as well as `AutoModel`."""

    def build_feature_extractor(self) -> Wav2Vec2FeatureExtractor:
        """The feature extractor that prepares this model's `input_values`."""
        raise NotImplementedError

    def save_pretrained(self, save_directory, is_main_process: bool = True, **kwargs):
        if any(getattr(module, "is_int8_quantized", False) for module in self.modules()):
            raise ValueError(
                "This model's Transformer runs in dynamically quantised int8 (`quantize_int8`), a run-time form that "
                "checkpoints do not hold: save the float model, and quantise it again after loading."
            )
        if is_main_process:  # first, so that `push_to_hub=True` uploads it with the weights (see below)
            self.build_feature_extractor().save_pretrained(save_directory)
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)

    def _get_files_timestamps(self, working_dir) -> dict[str, float]:
        # `save_pretrained(push_to_hub=True)` uploads the files that are new or changed since it started: leave the
        # feature extractor out of that starting point, so it counts as new.
        timestamps = super()._get_files_timestamps(working_dir)
        timestamps.pop(FEATURE_EXTRACTOR_FILE, None)
        return timestamps


class Wav2SemPreTrainedModel(SavesFeatureExtractorMixin, PreTrainedModel):
    """Weight initialisation, the conv length arithmetic and the Hub plumbing shared by the Wav2Sem models."""

    config: Wav2SemConfig
    config_class = Wav2SemConfig
    base_model_prefix = "wav2sem"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Wav2SemEncoderLayer"]

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        # For custom code, transformers skips a module whose own tensors are all initialised, and so, vacuously, every
        # module that owns none: the very ones whose `_init_weights` branch initialises their children below. The
        # `transformers.initialization` functions used there skip loaded tensors themselves.
        super()._initialize_weights(module, is_custom_code=is_custom_code and owns_tensors(module))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, Wav2SemPositionalConvEmbedding):
            weight_v = module.conv.parametrizations.weight.original1
            std = 2 * math.sqrt(1 / (module.conv.kernel_size[0] * module.conv.in_channels))
            init.normal_(weight_v, mean=0.0, std=std)
            init.copy_(module.conv.parametrizations.weight.original0, torch.norm_except_dim(weight_v, 2, dim=2))
            init.zeros_(module.conv.bias)
        elif isinstance(module, Wav2SemFeatureProjection):
            bound = math.sqrt(1 / module.projection.in_features)
            init.uniform_(module.projection.weight, a=-bound, b=bound)
            init.uniform_(module.projection.bias, a=-bound, b=bound)
        elif isinstance(module, Wav2SemConvLayer):
            init.kaiming_normal_(module.conv.weight)
            if module.conv.bias is not None:
                bound = math.sqrt(module.conv.groups / (module.conv.in_channels * module.conv.kernel_size[0]))
                init.uniform_(module.conv.bias, a=-bound, b=bound)
            if module.layer_norm is not None:
                init.ones_(module.layer_norm.weight)
                init.zeros_(module.layer_norm.bias)
        elif isinstance(module, Wav2SemModel):
            init.zeros_(module.target_shift)
            init.ones_(module.target_scale)
        elif isinstance(module, nn.Conv1d):
            pass  # convolutions are initialised by their owners above
        else:
            super()._init_weights(module)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.LongTensor | int) -> torch.LongTensor | int:
        """Number of encoder frames for `input_lengths` samples (hop 320, receptive field 400 by default)."""
        front_end = getattr(self, "front_end", None)
        if front_end is not None:
            if is_whisper(front_end.config):
                return whisper_frame_lengths(input_lengths)
            return front_end._get_feat_extract_output_lengths(input_lengths)
        if isinstance(input_lengths, int):
            return int(conv_output_lengths(torch.tensor(input_lengths), self.config.conv_kernel, self.config.conv_stride))
        return conv_output_lengths(input_lengths, self.config.conv_kernel, self.config.conv_stride)


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------


class Wav2SemModel(Wav2SemPreTrainedModel):
    r"""
    The Wav2Sem audio encoder: conv feature encoder -> feature projection -> positional conv -> Transformer -> mean over
    the valid frames (-> projection head when the teacher's size differs) = the sentence vector F_s.

    Batches may be right-padded with an `attention_mask`: every step that could see padding (the first conv layer's
    group norm, the positional conv, attention and pooling) is masked, so an utterance gets the same F_s alone and in a
    padded batch.

    Example:

    ```python
    >>> import torch
    >>> from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
    >>> model = Wav2SemModel(Wav2SemConfig.from_preset("tiny")).eval()
    >>> out = model(torch.randn(2, 16000), attention_mask=torch.ones(2, 16000, dtype=torch.long))
    >>> out.semantic_embeds.shape, out.last_hidden_state.shape
    (torch.Size([2, 32]), torch.Size([2, 49, 32]))
    ```
    """

    def __init__(self, config: Wav2SemConfig):
        super().__init__(config)
        if config.front_end_config is not None:  # a frozen pre-trained speech encoder instead of the conv stack
            self.front_end = build_speech_backbone(config.front_end_config)
            self.front_end.config = config.front_end_config
            self.feature_extractor = None
        else:
            self.front_end = None
            self.feature_extractor = Wav2SemFeatureEncoder(config)
        self.feature_projection = Wav2SemFeatureProjection(config)
        self.encoder = Wav2SemEncoder(config)
        self.projection_head = (
            nn.Linear(config.hidden_size, config.text_embed_dim)
            if config.text_embed_dim != config.hidden_size
            else None
        )
        # Folded-in inverse of the target standardisation (see `set_target_statistics`); identity by default.
        self.register_buffer("target_shift", torch.zeros(config.text_embed_dim))
        self.register_buffer("target_scale", torch.ones(config.text_embed_dim))
        self.is_int8_quantized = False  # see `quantize_int8`
        self.post_init()
        self._freeze_front_end()

    @classmethod
    def from_front_end(
        cls,
        front_end: "str | os.PathLike | PreTrainedModel",
        preset: str = "small",
        audio_context: str | None = None,
        front_end_kwargs: dict | None = None,
        **overrides,
    ) -> "Wav2SemModel":
        """A new Wav2Sem whose Transformer and pooling run on a frozen pre-trained speech encoder's frames.

        Args:
            front_end: a checkpoint (folder or Hub id; a Whisper checkpoint gives its encoder) or a model.
            preset: the `WAV2SEM_PRESETS` entry for the trainable part (its conv settings are unused).
            audio_context: for a Whisper front end, `"window"` (30 s windows, as Whisper was trained) or
                `"utterance"` (the encoder sees only the audio: faster on short clips); see
                `modeling_speech_backbone`.
            front_end_kwargs: `from_pretrained` arguments for the front end (`revision`, `dtype`, ...).
            overrides: config fields over the preset (`text_embed_dim`, `target`, ...).

        The front end's weights are copied in and saved with the model, so the result saves and loads as any
        Wav2Sem checkpoint.
        """
        if isinstance(front_end, PreTrainedModel):
            backbone = speech_encoder_of(front_end)
        else:
            backbone = speech_encoder_of(AutoModel.from_pretrained(front_end, **(front_end_kwargs or {})))
        front_end_config = copy.deepcopy(backbone.config)
        if audio_context is not None:
            if not is_whisper(front_end_config):
                raise ValueError("audio_context applies to Whisper front ends only.")
            front_end_config.audio_context = audio_context
        config = Wav2SemConfig.from_preset(preset, front_end_config=front_end_config, **overrides)
        model = cls(config)
        model.front_end.load_state_dict(backbone.state_dict())
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; a front end is frozen again (loading resets the flags)."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded)._freeze_front_end()
        return loaded

    def _freeze_front_end(self):
        if self.front_end is not None:
            self.front_end.requires_grad_(False)
            self.front_end.eval()

    def train(self, mode: bool = True):
        """As `nn.Module.train`; a front end stays in eval mode (frozen: no dropout)."""
        super().train(mode)
        if self.front_end is not None:
            self.front_end.eval()
        return self

    def build_feature_extractor(self) -> Wav2Vec2FeatureExtractor:
        """Per-utterance normalisation at the config's sampling rate (the raw waveform for a Whisper front end), with
        attention masks (batches are masked)."""
        if not self.config.normalizes_audio:
            return raw_audio_feature_extractor(self.config.sampling_rate)
        return normalizing_feature_extractor(self.config.sampling_rate)

    def freeze_feature_encoder(self):
        """Stop gradients to the conv feature encoder (a front end is frozen whole already)."""
        if self.feature_extractor is not None:
            for param in self.feature_extractor.parameters():
                param.requires_grad = False

    def quantize_int8(self) -> "Wav2SemModel":
        """For inference only (a frozen Wav2Sem, as in `Wav2SemFusedEncoder`): replace the Transformer layers' linear
        layers, in place, by dynamically quantised int8 ones (`torch.ao.quantization.quantize_dynamic`: int8 weights
        per tensor; each input is quantised with its own range; fbgemm / oneDNN use VNNI or AMX-INT8 where the CPU has
        them). They hold about 57% of the paper preset's FLOPs on 10 s of audio; the conv feature encoder, the
        projections and the pooling stay in float, and the model then runs in fp32 even under autocast.

        F_s moves slightly (`benchmarks/bench_encoder.py --dtypes int8` reports its cosine to fp32) and depends a
        little on what else is in the batch (the activation range is per batch). The result cannot be saved: save the
        float model and quantise after loading. Returns the model.
        """
        if self.training:
            raise ValueError("quantize_int8 is for inference: call model.eval() first (int8 layers have no gradients).")
        if self.is_int8_quantized:
            return self
        if self.encoder.layers[0].feed_forward.output_dense.weight.dtype != torch.float32:
            raise ValueError(f"quantize_int8 quantises fp32 weights; this model is in {self.dtype}: call .float() first.")
        with warnings.catch_warnings():  # torch marks its eager quantisation API deprecated in favour of torchao
            warnings.simplefilter("ignore")
            torch.ao.quantization.quantize_dynamic(self.encoder.layers, {nn.Linear}, dtype=torch.qint8, inplace=True)
        self.requires_grad_(False)
        self.is_int8_quantized = True
        return self

    @torch.no_grad()
    def front_end_frames(
        self, input_values: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frozen front end's frames `(B, N, C_f)` (zero past each item's) and their lengths `(B,)` (`None` for an
        unpadded batch)."""
        batch, samples = input_values.shape
        full = torch.full((batch,), samples, dtype=torch.long, device=input_values.device)
        sample_lengths = full if lengths is None else lengths
        if is_whisper(self.front_end.config):
            frames, frame_lengths = whisper_encoder_frames(self.front_end, input_values, sample_lengths)
        else:
            mask = None
            if lengths is not None and getattr(self.front_end.config, "feat_extract_norm", "layer") == "layer":
                mask = lengths_to_mask(lengths, samples).long()
            frames = self.front_end(input_values.to(self.front_end.dtype), attention_mask=mask).last_hidden_state
            frame_lengths = self.front_end._get_feat_extract_output_lengths(sample_lengths)
            frames = frames * lengths_to_mask(frame_lengths, frames.shape[1])[..., None]
        return frames, (None if lengths is None else frame_lengths)

    def _check_front_end_frames(
        self, input_values: torch.Tensor | None, frames: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate precomputed front-end frames `(B, N, C_f)` and their mask `(B, N)`; returns them with the mask as
        bools (`None` when there is none)."""
        if self.front_end is None:
            raise ValueError(
                "front_end_frames are the frames of a frozen front end, but this model has none (it encodes raw audio "
                "with its own conv stack): pass input_values."
            )
        if input_values is not None:
            raise ValueError("Pass either input_values or front_end_frames, not both.")
        width = self.feature_projection.projection.in_features
        if not torch.is_tensor(frames) or frames.dim() != 3 or frames.shape[-1] != width:
            shape = tuple(frames.shape) if torch.is_tensor(frames) else type(frames)
            raise ValueError(f"front_end_frames must have shape (batch, frames, {width}), got {shape}.")
        if mask is None:
            return frames, None
        if mask.shape != frames.shape[:2]:
            raise ValueError(
                f"frame_attention_mask has shape {tuple(mask.shape)} but front_end_frames has {tuple(frames.shape[:2])} "
                "(batch, frames); they must match."
            )
        mask = mask.bool()
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()) or not bool(mask[:, 0].all()):
            raise ValueError("frame_attention_mask must be right-padded with at least one real frame per item.")
        return frames * mask[..., None], mask

    @torch.no_grad()
    def set_target_statistics(self, mean: torch.Tensor, std: torch.Tensor):
        """Fold the training targets' per-dimension mean and std `(D,)` into the model.

        Train the head on standardised targets `(t - mean) / std` through `standardized_embeds`; `semantic_embeds`
        is then `standardized_embeds * std + mean`, in the teacher's own space.
        """
        if mean.shape != self.target_shift.shape or std.shape != self.target_scale.shape:
            raise ValueError(
                f"Target statistics must have shape {tuple(self.target_shift.shape)}, got {tuple(mean.shape)} and "
                f"{tuple(std.shape)}."
            )
        if bool((std <= 0).any()):
            raise ValueError("Target standard deviations must be positive.")
        self.target_shift.copy_(mean)
        self.target_scale.copy_(std)

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        front_end_frames: torch.Tensor | None = None,
        frame_attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> Wav2SemModelOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`):
                16 kHz mono audio as `build_feature_extractor()` prepares it (normalised per utterance; raw for a
                Whisper front end), right-padded.
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*):
                1 on real samples, 0 on padding.
            front_end_frames (`torch.FloatTensor` of shape `(B, N, C_f)`, *optional*):
                Instead of `input_values`, for a model on a frozen front end: its frames as `front_end_frames()`
                returns them (computed once and cached, since the front end never changes), right-padded.
            frame_attention_mask (`torch.LongTensor` of shape `(B, N)`, *optional*):
                1 on real frames of `front_end_frames`, 0 on padding.
        """
        output_attentions, output_hidden_states, return_dict = resolve_output_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )

        if self.is_int8_quantized and torch.is_autocast_enabled(self.device.type):
            with torch.autocast(self.device.type, enabled=False):  # int8 layers take fp32 activations
                return self.forward(
                    input_values if input_values is None else input_values.float(), attention_mask,
                    front_end_frames=front_end_frames if front_end_frames is None else front_end_frames.float(),
                    frame_attention_mask=frame_attention_mask, output_hidden_states=output_hidden_states,
                    output_attentions=output_attentions, return_dict=return_dict,
                )
        frame_mask = None
        if front_end_frames is not None:
            features, frame_mask = self._check_front_end_frames(input_values, front_end_frames, frame_attention_mask)
        elif self.front_end is not None:
            lengths = validate_audio_inputs(input_values, attention_mask, self.config.receptive_field)
            features, frame_lengths = self.front_end_frames(input_values, lengths)
            if frame_lengths is not None:
                frame_mask = lengths_to_mask(frame_lengths, features.shape[1])
        else:
            lengths = validate_audio_inputs(input_values, attention_mask, self.config.receptive_field)
            features = self.feature_extractor(input_values.to(self.dtype), lengths).transpose(1, 2)
            if lengths is not None:
                frame_mask = lengths_to_mask(self._get_feat_extract_output_lengths(lengths), features.shape[1])
        hidden_states = self.feature_projection(features.to(self.feature_projection.projection.weight.dtype))
        hidden_states, all_hidden_states, all_attentions = self.encoder(
            hidden_states, frame_mask, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )

        standardized = masked_mean(hidden_states, frame_mask)
        if self.projection_head is not None:
            standardized = self.projection_head(standardized.to(self.projection_head.weight.dtype)).float()
        semantic = standardized * self.target_scale.float() + self.target_shift.float()

        output = Wav2SemModelOutput(
            last_hidden_state=hidden_states,
            semantic_embeds=semantic,
            standardized_embeds=standardized,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
        )
        return output if return_dict else output.to_tuple()


class Wav2SemFusedEncoder(SavesFeatureExtractorMixin, PreTrainedModel):
    r"""
    A speech backbone (HuBERT, Wav2Vec2, WavLM, Data2VecAudio, ... built with `AutoModel`) fused with a frozen
    Wav2Sem: for every frame, `F_d = FC2(FC1(F_s) + F_p)`, with F_p the backbone's last hidden state `(B, N, C_p)`
    and F_s the Wav2Sem sentence vector `(B, D)` broadcast over time. FC1 is a trainable `Linear(D, C_p)`; FC2 is the
    identity unless `config.output_dim` is set, so `last_hidden_state` drops into code written for the backbone.

    The Wav2Sem part always runs in eval mode without gradients, and receives the audio normalised per utterance
    (whatever normalisation the backbone expects).

    Example:

    ```python
    >>> from modeling_wav2sem import Wav2SemFusedEncoder
    >>> model = Wav2SemFusedEncoder.from_backbone_and_wav2sem("facebook/hubert-base-ls960", "path/to/wav2sem-c")
    >>> model.save_pretrained("hubert-base-wav2sem-c")  # one self-contained checkpoint
    ```
    """

    config: Wav2SemFusedConfig
    config_class = Wav2SemFusedConfig
    base_model_prefix = "wav2sem_fused"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(
        self,
        config: Wav2SemFusedConfig,
        backbone: PreTrainedModel | None = None,
        wav2sem: "Wav2SemModel | None" = None,
    ):
        _check_rates(config.audio_config, config.wav2sem_config)
        super().__init__(config)
        self.backbone = backbone if backbone is not None else build_speech_backbone(config.audio_config)
        self.wav2sem = wav2sem if wav2sem is not None else Wav2SemModel(config.wav2sem_config)
        # One config object per sub-model, shared with the composite config (as SpeechEncoderDecoderModel does).
        # Building the composite config resets the sub-configs' attention implementation: give them the resolved one.
        for sub_config, sub_model in ((config.audio_config, self.backbone), (config.wav2sem_config, self.wav2sem)):
            if sub_config._attn_implementation is None:
                sub_config._attn_implementation = sub_model.config._attn_implementation or self.config._attn_implementation
        self.backbone.config = self.config.audio_config
        self.wav2sem.config = self.config.wav2sem_config
        backbone_size = config.audio_config.hidden_size
        self.fc1 = nn.Linear(config.wav2sem_config.text_embed_dim, backbone_size)
        self.fc2 = nn.Linear(backbone_size, config.output_dim) if config.output_dim else nn.Identity()
        self.wav2sem.requires_grad_(False)
        self.wav2sem.eval()
        # The backbone's own feature extractor when known (see `build_feature_extractor`); not a module.
        self.backbone_feature_extractor: Wav2Vec2FeatureExtractor | None = None
        self.post_init()
        self.fc1.to(self.backbone.dtype)  # a backbone passed in, e.g. loaded in bf16, sets the dtype
        self.fc2.to(self.backbone.dtype)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is self.fc1:
            if self.config.fusion_init == "zeros":
                init.zeros_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=0.02)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> "Wav2SemFusedEncoder":
        """As `PreTrainedModel.from_pretrained`, then the Wav2Sem module is frozen again (loading resets flags), and
        the checkpoint's feature extractor is kept so `save_pretrained` writes it again."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info) with output_loading_info
        model.wav2sem.requires_grad_(False)
        model.wav2sem.eval()
        model.backbone_feature_extractor = _load_feature_extractor(pretrained_model_name_or_path, kwargs)
        return loaded

    def build_feature_extractor(self) -> Wav2Vec2FeatureExtractor:
        """The backbone's feature extractor when it came with one (the input is the backbone's; Wav2Sem normalises
        its own copy), else per-utterance normalisation; always with attention masks, which Wav2Sem needs to pool a
        padded batch (the backbone gets them only if `config.backbone_attention_mask`)."""
        if is_whisper(self.config.audio_config):  # the model computes Whisper's log-mel features itself
            return raw_audio_feature_extractor(self.config.wav2sem_config.sampling_rate)
        if self.backbone_feature_extractor is None:
            return normalizing_feature_extractor(self.config.wav2sem_config.sampling_rate)
        extractor = copy.deepcopy(self.backbone_feature_extractor)
        extractor.return_attention_mask = True
        return extractor

    def train(self, mode: bool = True):
        """Train the backbone and the fusion layers; the Wav2Sem module stays in eval mode (no dropout, LayerDrop)."""
        super().train(mode)
        self.wav2sem.eval()
        return self

    def freeze_feature_encoder(self):
        """Stop gradients to the backbone's conv feature encoder (Whisper: its two convolutions), as the downstream
        baselines do (the Wav2Sem module is frozen whole anyway). The standard name of transformers' speech models."""
        freeze_conv_front_end(self.backbone)

    freeze_backbone_feature_encoder = freeze_feature_encoder  # the name before 0.2

    def quantize_wav2sem_int8(self) -> "Wav2SemFusedEncoder":
        """Run the frozen Wav2Sem's Transformer in dynamically quantised int8 (`Wav2SemModel.quantize_int8`); the
        backbone and the fusion layers are untouched and train as before. Not saved: quantise after loading."""
        self.wav2sem.quantize_int8()
        return self

    @torch.no_grad()
    def semantic_embeddings(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """F_s `(B, D)`: the frozen Wav2Sem's sentence vector of each utterance, computed on its own copy of the audio
        normalised per utterance (over the real samples when `attention_mask` is given)."""
        lengths = validate_audio_inputs(input_values, attention_mask, self.config.wav2sem_config.receptive_field)
        wav2sem_mask = None if lengths is None else attention_mask
        audio = normalize_audio(input_values, lengths) if self.config.wav2sem_config.normalizes_audio else input_values
        return self.wav2sem(audio, attention_mask=wav2sem_mask).semantic_embeds

    def fuse(self, frame_features: torch.Tensor, semantic_embeds: torch.Tensor) -> torch.Tensor:
        """F_d = FC2(FC1(F_s) + F_p): `frame_features` F_p `(B, N, C_p)` at any frame rate, `semantic_embeds` F_s
        `(B, D)` broadcast over the frames."""
        return self.fc2(self.fc1(semantic_embeds.to(frame_features.dtype)).unsqueeze(1) + frame_features)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.LongTensor | int) -> torch.LongTensor | int:
        """Number of output frames for `input_lengths` samples (the backbone's arithmetic)."""
        if is_whisper(self.config.audio_config):
            return whisper_frame_lengths(input_lengths)
        return self.backbone._get_feat_extract_output_lengths(input_lengths)

    @classmethod
    def from_backbone_and_wav2sem(
        cls,
        backbone: "str | os.PathLike | PreTrainedModel",
        wav2sem: "str | os.PathLike | Wav2SemModel",
        output_dim: int | None = None,
        fusion_init: str = "zeros",
        **kwargs,
    ) -> "Wav2SemFusedEncoder":
        """Build a fused encoder from a backbone and a Wav2Sem: checkpoints (local folders or Hub ids) or models.

        `kwargs` go to the `from_pretrained` calls (e.g. `revision`, `token`, `dtype`). Sampling and frame rates of
        the two must agree (checked on their configs, and on the feature extractors of checkpoints that have one).
        The backbone checkpoint's feature extractor is kept and saved with the fused model. FC1 (and FC2) are new.
        """
        backbone_model = speech_encoder_of(_as_model(backbone, AutoModel, "backbone", kwargs))
        wav2sem_model = _as_model(wav2sem, Wav2SemModel, "wav2sem", kwargs)
        wav2sem_extractor = None if isinstance(wav2sem, PreTrainedModel) else _load_feature_extractor(wav2sem, kwargs)
        backbone_extractor = None if isinstance(backbone, PreTrainedModel) else _load_feature_extractor(backbone, kwargs)
        for name, extractor in (("backbone", backbone_extractor), ("Wav2Sem", wav2sem_extractor)):
            _check_sampling_rate(extractor, name, wav2sem_model.config)
        if is_whisper(backbone_model.config):  # its log-mel features are computed in the model, from raw audio
            check_whisper_feature_extractor(backbone_extractor, backbone_model.config)
            backbone_extractor = None
        config = cls.config_class(
            audio_config=backbone_model.config,
            wav2sem_config=wav2sem_model.config,
            output_dim=output_dim,
            fusion_init=fusion_init,
            backbone_attention_mask=getattr(backbone_extractor, "return_attention_mask", None),
        )
        model = cls(config, backbone=backbone_model, wav2sem=wav2sem_model)
        model.backbone_feature_extractor = backbone_extractor
        return model

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> Wav2SemFusedEncoderOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`):
                16 kHz mono audio as the backbone's feature extractor prepares it, right-padded.
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*):
                1 on real samples, 0 on padding. Wav2Sem always uses it (without it, a padded batch's F_s averages
                over the padding); the backbone gets it when `config.backbone_attention_mask`, as with its own
                feature extractor.
        """
        output_attentions, output_hidden_states, return_dict = resolve_output_flags(
            self.config, output_attentions, output_hidden_states, return_dict
        )

        lengths = validate_audio_inputs(input_values, attention_mask, self.config.wav2sem_config.receptive_field)
        if is_whisper(self.config.audio_config):
            if output_attentions or output_hidden_states:
                raise ValueError("output_attentions / output_hidden_states are not available for a Whisper backbone.")
            frame_features, _ = whisper_encoder_frames(self.backbone, input_values, lengths)
            backbone_outputs = None
        else:
            backbone_outputs = self.backbone(
                input_values.to(self.backbone.dtype),
                attention_mask=attention_mask if self.config.backbone_attention_mask else None,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            frame_features = backbone_outputs.last_hidden_state
        semantic = self.semantic_embeddings(input_values, attention_mask if lengths is not None else None)
        fused = self.fuse(frame_features, semantic)

        output = Wav2SemFusedEncoderOutput(
            last_hidden_state=fused,
            backbone_hidden_state=frame_features,
            semantic_embeds=semantic,
            hidden_states=backbone_outputs.hidden_states if output_hidden_states else None,
            attentions=backbone_outputs.attentions if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


def _hop_length(config) -> int | None:
    strides = getattr(config, "conv_stride", None)
    return math.prod(strides) if strides else None


def _check_rates(audio_config, wav2sem_config: Wav2SemConfig):
    """Raise if the backbone's frame rate (samples per frame) differs from Wav2Sem's."""
    backbone_hop = _hop_length(audio_config)
    if backbone_hop is not None and backbone_hop != wav2sem_config.inputs_to_logits_ratio:
        raise ValueError(
            f"Frame rates differ: the backbone ({audio_config.model_type}) makes one frame every {backbone_hop} "
            f"samples, Wav2Sem every {wav2sem_config.inputs_to_logits_ratio}."
        )


def _hub_kwargs(kwargs: dict) -> dict:
    """The `from_pretrained` arguments that say where a checkpoint's other files come from."""
    return {key: kwargs[key] for key in ("revision", "token", "cache_dir", "local_files_only") if key in kwargs}


def _as_model(model_or_path, model_class, name: str, kwargs: dict) -> PreTrainedModel:
    """A model given as such, or loaded with `model_class.from_pretrained` from a folder or Hub id; a concrete
    `model_class` only accepts checkpoints (and models) of its own `model_type`."""
    if not isinstance(model_or_path, (str, os.PathLike, PreTrainedModel)):
        raise ValueError(
            f"{name} must be a checkpoint folder, a Hub id or a PreTrainedModel, got {type(model_or_path).__name__}."
        )
    expected = getattr(getattr(model_class, "config_class", None), "model_type", None)
    if isinstance(model_or_path, PreTrainedModel):
        found = model_or_path.config.model_type
    elif expected:
        found = PreTrainedConfig.get_config_dict(model_or_path, **_hub_kwargs(kwargs))[0].get("model_type")
    if expected and found != expected:
        raise ValueError(f"{name} must be a {expected!r} model or checkpoint, got model_type {found!r}.")
    if isinstance(model_or_path, PreTrainedModel):
        return model_or_path
    return model_class.from_pretrained(model_or_path, **kwargs)


def _load_feature_extractor(name_or_path, kwargs: dict) -> Wav2Vec2FeatureExtractor | None:
    """The feature extractor saved with a checkpoint, or `None` when it has none."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return None
    try:
        return AutoFeatureExtractor.from_pretrained(name_or_path, **_hub_kwargs(kwargs))
    except (OSError, ValueError):
        return None


def _check_sampling_rate(extractor, name: str, wav2sem_config: Wav2SemConfig):
    """Raise if a feature extractor expects another sampling rate than the Wav2Sem config."""
    rate = getattr(extractor, "sampling_rate", None)
    if rate is not None and rate != wav2sem_config.sampling_rate:
        raise ValueError(
            f"Sampling rates differ: the {name} feature extractor expects {rate} Hz, the Wav2Sem config "
            f"{wav2sem_config.sampling_rate} Hz."
        )


__all__ = [
    "Wav2SemFusedEncoder",
    "Wav2SemFusedEncoderOutput",
    "Wav2SemModel",
    "Wav2SemModelOutput",
    "Wav2SemPreTrainedModel",
]
