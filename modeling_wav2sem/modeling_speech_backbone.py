# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""The speech backbones the package runs, in one place: wav2vec2-family encoders and Whisper's encoder.

Every model of the package takes raw 16 kHz audio (`input_values`, right-padded, with an `attention_mask`) and needs a
backbone's frames at 50 Hz, each item's exactly as if it were alone. wav2vec2-family `AutoModel`s (HuBERT, Wav2Vec2,
WavLM, Data2VecAudio) do that on their own. Whisper's encoder (OpenAI, MIT; `WhisperModel`'s encoder, the same from
any `WhisperForConditionalGeneration` checkpoint) is built for 30 s windows of log-mel features; this file runs it on
raw audio:

1. Each item is cut into 30 s windows (480,000 samples; the last one shorter).
2. Each window becomes log-mel features through transformers' `WhisperFeatureExtractor` (80 or 128 mel bins as the
   config says, 25 ms / 10 ms frames, dynamic range clamped per window, Whisper's own normalisation), one window at
   a time so that nothing depends on the rest of the batch.
3. The encoder runs stage by stage as `WhisperEncoder.forward` does (conv1, conv2 with stride 2, positions, layers,
   final LayerNorm), in one of two contexts, `config.audio_context` on the Whisper config:
   - `"window"` (the default, as Whisper was trained): every window is zero-padded to 30 s (3,000 mel frames, 1,500
     encoder frames) and the frames past the audio are dropped afterwards.
   - `"utterance"`: the encoder sees only the audio (the padding of a batch is masked out of attention), as
     whisper.cpp's reduced audio context does: much faster on short clips, a little further from Whisper's training
     conditions.
4. The windows' frames are put back together and cut to `whisper_frame_lengths(samples)` = ceil(floor(L / 160) / 2)
   frames per item (one per 320 samples, as wav2vec2's hop); the batch is zero-padded past each item's frames.

Whisper's input is raw audio in [-1, 1] (its feature extractor does not normalise the waveform): the feature
extractor saved with a model on a Whisper backbone (`raw_audio_feature_extractor`) passes audio through unchanged and
returns attention masks; the log-mel settings come from the Whisper config, and a checkpoint whose own
`WhisperFeatureExtractor` differs from them is refused (`check_whisper_feature_extractor`).

Imports only torch, transformers and nothing else of the package, so that it travels with the models as remote code.
"""

import torch
from torch import nn
from torch.nn import functional as F

from transformers import AutoModel, PreTrainedModel, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

WHISPER_SAMPLING_RATE = 16000
WHISPER_HOP_LENGTH = 160  # samples per mel frame (10 ms)
WHISPER_N_FFT = 400  # 25 ms windows; also the shortest audio accepted
WHISPER_CHUNK_SECONDS = 30
WHISPER_WINDOW_SAMPLES = WHISPER_CHUNK_SECONDS * WHISPER_SAMPLING_RATE  # 480,000
AUDIO_CONTEXTS = ("window", "utterance")


def is_whisper(config) -> bool:
    """Whether a backbone config is Whisper's (its encoder is run by this file, not by its own `forward`)."""
    return getattr(config, "model_type", None) == "whisper"


def build_speech_backbone(config) -> PreTrainedModel:
    """A new backbone from its config: Whisper's encoder alone (no decoder) for a Whisper config, else `AutoModel`."""
    if is_whisper(config):
        return WhisperEncoder(config)
    return AutoModel.from_config(config)


def speech_encoder_of(model: PreTrainedModel) -> PreTrainedModel:
    """The part of a loaded speech model that makes frames: a Whisper model's encoder, else the model itself."""
    if is_whisper(model.config) and not isinstance(model, WhisperEncoder):
        return model.get_encoder()
    return model


def load_speech_backbone(name_or_path, **kwargs) -> PreTrainedModel:
    """A pre-trained backbone from a folder or Hub id (`AutoModel.from_pretrained` arguments), the encoder of a
    Whisper checkpoint (`WhisperForConditionalGeneration` or `WhisperModel`)."""
    return speech_encoder_of(AutoModel.from_pretrained(name_or_path, **kwargs))


def audio_context(config) -> str:
    """`config.audio_context` of a Whisper config (`"window"` unless set), checked."""
    context = getattr(config, "audio_context", None) or "window"
    if context not in AUDIO_CONTEXTS:
        raise ValueError(f"audio_context must be one of {AUDIO_CONTEXTS}, got {context!r}.")
    return context


def whisper_frame_lengths(sample_lengths: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder frames (50 Hz) for lengths in samples (`(B,)` or an int): ceil(floor(L / 160) / 2)."""
    return (sample_lengths // WHISPER_HOP_LENGTH + 1) // 2


def whisper_log_mel_extractor(config) -> WhisperFeatureExtractor:
    """The `WhisperFeatureExtractor` of a Whisper config: its mel bins, Whisper's 16 kHz, 10 ms hop, 25 ms FFT and
    30 s windows (the values of every released Whisper checkpoint)."""
    return WhisperFeatureExtractor(
        feature_size=config.num_mel_bins,
        sampling_rate=WHISPER_SAMPLING_RATE,
        hop_length=WHISPER_HOP_LENGTH,
        chunk_length=WHISPER_CHUNK_SECONDS,
        n_fft=WHISPER_N_FFT,
    )


def check_whisper_feature_extractor(extractor, config) -> None:
    """Raise if a checkpoint's own Whisper feature extractor computes other log-mel features than this file does."""
    if not isinstance(extractor, WhisperFeatureExtractor):
        return
    expected = whisper_log_mel_extractor(config)
    fields = ("feature_size", "sampling_rate", "hop_length", "n_fft", "chunk_length", "dither")
    differ = {f: (getattr(extractor, f, None), getattr(expected, f)) for f in fields}
    differ = {f: v for f, v in differ.items() if v[0] != v[1]}
    if differ:
        details = ", ".join(f"{f}={got!r} (expected {want!r})" for f, (got, want) in differ.items())
        raise ValueError(f"This Whisper checkpoint's feature extractor is not the standard one: {details}.")


def raw_audio_feature_extractor(sampling_rate: int = WHISPER_SAMPLING_RATE) -> Wav2Vec2FeatureExtractor:
    """What a model on a Whisper backbone takes: the waveform unchanged (no normalisation), with attention masks."""
    return Wav2Vec2FeatureExtractor(
        sampling_rate=sampling_rate, do_normalize=False, return_attention_mask=True, padding_value=0.0
    )


def _windows(input_values: torch.Tensor, lengths: list[int]) -> tuple[list[torch.Tensor], list[int]]:
    """Every item's real audio cut into 30 s windows, in order, and which item each window belongs to."""
    windows, owners = [], []
    for b, length in enumerate(lengths):
        for start in range(0, length, WHISPER_WINDOW_SAMPLES):
            windows.append(input_values[b, start : min(length, start + WHISPER_WINDOW_SAMPLES)])
            owners.append(b)
    return windows, owners


def _log_mel(extractor: WhisperFeatureExtractor, window: torch.Tensor, pad_to_window: bool) -> torch.Tensor:
    """`(n_mels, M)` log-mel features of one window (M = samples // 160), or of the window zero-padded to 30 s
    (M = 3,000)."""
    audio = window.detach().float().cpu().numpy()
    if pad_to_window:
        features = extractor(audio, sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="pt").input_features
    else:
        features = extractor(
            audio, sampling_rate=WHISPER_SAMPLING_RATE, return_tensors="pt", padding="longest", truncation=False
        ).input_features
    return features[0]


def _run_whisper_layers(encoder: WhisperEncoder, mel: torch.Tensor, mel_lengths: list[int] | None) -> torch.Tensor:
    """`WhisperEncoder.forward`, stage by stage, on `(W, n_mels, M)` log-mel windows; with `mel_lengths` (utterance
    context) each window's padding is kept out of the convolutions and of attention. Returns `(W, ceil(M/2), C)`."""
    hidden = F.gelu(encoder.conv1(mel))
    attention_mask = None
    if mel_lengths is not None:
        steps = torch.arange(hidden.shape[-1], device=hidden.device)
        hidden = hidden * (steps[None] < torch.tensor(mel_lengths, device=hidden.device)[:, None])[:, None]
    hidden = F.gelu(encoder.conv2(hidden)).permute(0, 2, 1)  # (W, N, C)
    frames = hidden.shape[1]
    if frames > encoder.embed_positions.num_embeddings:
        raise ValueError(f"A window of {frames} frames exceeds Whisper's {encoder.embed_positions.num_embeddings}.")
    positions = torch.arange(frames, device=hidden.device)
    hidden = hidden + encoder.embed_positions(positions)
    hidden = F.dropout(hidden, p=encoder.dropout, training=encoder.training)
    if mel_lengths is not None:
        keep = steps[:frames][None] < (torch.tensor(mel_lengths, device=hidden.device)[:, None] + 1) // 2
        attention_mask = torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device)
        attention_mask = attention_mask.masked_fill(~keep, torch.finfo(hidden.dtype).min)[:, None, None, :]
        attention_mask = attention_mask.expand(-1, 1, frames, frames)
    for layer in encoder.layers:
        if encoder.training and encoder.layerdrop > 0.0 and torch.rand([]) < encoder.layerdrop:
            continue
        hidden = layer(hidden, attention_mask)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return encoder.layer_norm(hidden)


def whisper_encoder_frames(
    encoder: WhisperEncoder, input_values: torch.Tensor, sample_lengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Whisper's encoder frames for raw audio, padding-exact (see the module docstring).

    Args:
        encoder: a `WhisperEncoder` (`speech_encoder_of` a Whisper model).
        input_values (`(B, L)`): raw 16 kHz audio in [-1, 1], right-padded.
        sample_lengths (`(B,)`, *optional*): real samples per item (all `L` by default).

    Returns:
        `(B, max(N_b), C)` frames, zero past each item's `N_b = whisper_frame_lengths(L_b)`, and `N_b` `(B,)`.
    """
    batch, samples = input_values.shape
    if sample_lengths is None:
        sample_lengths = torch.full((batch,), samples, dtype=torch.long, device=input_values.device)
    lengths = [int(n) for n in sample_lengths.tolist()]
    if min(lengths) < WHISPER_N_FFT:
        raise ValueError(f"Whisper needs at least {WHISPER_N_FFT} samples of audio per item, got {min(lengths)}.")
    extractor = _cached_extractor(encoder)
    pad_to_window = audio_context(encoder.config) == "window"
    windows, owners = _windows(input_values, lengths)
    mels = [_log_mel(extractor, window, pad_to_window) for window in windows]
    mel_lengths = None if pad_to_window else [mel.shape[-1] for mel in mels]
    width = max(mel.shape[-1] for mel in mels)
    mel = torch.stack([F.pad(m, (0, width - m.shape[-1])) for m in mels])
    mel = mel.to(device=encoder.conv1.weight.device, dtype=encoder.conv1.weight.dtype)
    hidden = _run_whisper_layers(encoder, mel, mel_lengths)  # (W, N_w, C)
    window_frames = whisper_frame_lengths(torch.tensor([len(w) for w in windows]))
    frame_lengths = whisper_frame_lengths(sample_lengths.cpu())
    out = hidden.new_zeros(batch, int(frame_lengths.max()), hidden.shape[-1])
    filled = [0] * batch
    for w, b in enumerate(owners):
        n = int(window_frames[w])
        out[b, filled[b] : filled[b] + n] = hidden[w, :n]
        filled[b] += n
    return out, frame_lengths.to(input_values.device)


def speech_frames(model: PreTrainedModel, input_values: torch.Tensor) -> torch.Tensor:
    """`(B, N, C)` frame features of an unpadded batch of audio from any speech model of the package: a Whisper
    encoder (run by this file), a wav2vec2-family model or a `Wav2SemFusedEncoder` (their own `forward`)."""
    if is_whisper(model.config):
        return whisper_encoder_frames(model, input_values)[0]
    return model(input_values).last_hidden_state


def _cached_extractor(encoder: WhisperEncoder) -> WhisperFeatureExtractor:
    """The encoder's log-mel extractor, built once (its mel filter bank) and kept on the module (not saved)."""
    extractor = getattr(encoder, "_wav2sem_log_mel", None)
    if extractor is None or extractor.feature_size != encoder.config.num_mel_bins:
        extractor = whisper_log_mel_extractor(encoder.config)
        encoder._wav2sem_log_mel = extractor
    return extractor


def freeze_conv_front_end(backbone: PreTrainedModel) -> None:
    """Stop gradients to a backbone's convolutional front end: wav2vec2's conv `feature_extractor`, Whisper's
    `conv1`/`conv2` (its positions are fixed already)."""
    if is_whisper(backbone.config):
        modules = [backbone.conv1, backbone.conv2]
    else:
        feature_encoder = getattr(backbone, "feature_extractor", None)
        if not isinstance(feature_encoder, nn.Module):
            raise ValueError(f"{type(backbone).__name__} has no conv feature encoder (`feature_extractor`) to freeze.")
        modules = [feature_encoder]
        if hasattr(feature_encoder, "_requires_grad"):
            feature_encoder._requires_grad = False  # transformers' encoders then skip the gradient-checkpointing hook
    for module in modules:
        module.requires_grad_(False)


__all__ = [
    "build_speech_backbone",
    "freeze_conv_front_end",
    "is_whisper",
    "load_speech_backbone",
    "raw_audio_feature_extractor",
    "speech_encoder_of",
    "speech_frames",
    "whisper_encoder_frames",
    "whisper_frame_lengths",
]
