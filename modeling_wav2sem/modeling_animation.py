# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""What every speech-driven 3D facial animation model of this package does identically, in one place.

Read top to bottom: the output, audio resampling to the vertex frame rate, input checks, and
`AnimationPreTrainedModel`, the base class of FaceFormer, VOCA and the other baselines. Imports only torch,
transformers and the sibling files, so that every saved model carries it as Hub remote code.

**The audio encoder contract.** `model.audio_encoder` is any wav2vec2-family `AutoModel` (HuBERT, Wav2Vec2, WavLM,
Data2VecAudio: a conv `feature_extractor`, a `feature_projection`, an `encoder` of Transformer layers, 50 Hz frames at
16 kHz), Whisper's encoder, or a `Wav2SemFusedEncoder` around one (its `backbone`). The base runs the encoder stage by
stage, so it can bring the frames to the vertex rate where the published model does: on the conv features before the
Transformer layers (`resample_point = "conv"`: FaceFormer, CodeTalker) or on the encoder's output (`"output"`: VOCA,
UniTalker, ...). A fused encoder adds `FC1(F_s)` to the backbone's frames at that rate (`Wav2SemFusedEncoder.fuse`):
F_d feeds the model exactly where F_p would. Nothing in transformers is patched.

A Whisper encoder runs on 30 s windows of log-mel features computed from the raw audio (`modeling_speech_backbone`);
its Transformer needs its own 50 Hz frames, so its output is brought to the vertex rate for every model (a
`resample_point = "conv"` model resamples Whisper's output instead: a reconstruction, as none of the published models
ran on Whisper).

**The model contract.** `forward(input_values, template, subject_index=..., labels=...) -> output.loss` trains;
`predict(input_values, template, subject_index=...) -> output.vertices` animates. Both take right-padded batches
(`attention_mask` for the audio, `vertex_mask` for the frames), a speaker by index or name (or a one-hot / mixing
weights), and templates as `(B, V*3)` or `(B, V, 3)`. Bad input is refused with a `ValueError` naming the problem.

Shapes: B batch, L samples, N conv frames (50 Hz), T vertex frames, k audio frames per vertex frame, C encoder width,
S training speakers, V3 = V*3 flattened vertices.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from transformers import AutoModel, PreTrainedModel, Wav2Vec2FeatureExtractor
from transformers import initialization as init
from transformers.feature_extraction_utils import FeatureExtractionMixin
from transformers.utils import ModelOutput

from .configuration_animation import AnimationConfig
from .configuration_wav2sem import Wav2SemFusedConfig
from .modeling_speech_backbone import (
    WHISPER_N_FFT,
    build_speech_backbone,
    check_whisper_feature_extractor,
    freeze_conv_front_end,
    is_whisper,
    raw_audio_feature_extractor,
    speech_encoder_of,
    whisper_encoder_frames,
    whisper_frame_lengths,
)
from .modeling_wav2sem import (
    SavesFeatureExtractorMixin,
    Wav2SemFusedEncoder,
    _load_feature_extractor,
    conv_output_lengths,
    lengths_to_mask,
    owns_tensors,
    validate_audio_inputs,
)


# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class AnimationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        The model's training loss over the real frames only; when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The predicted meshes (motion plus template). Frames beyond an item's length (see `vertex_mask`) are not
        meaningful.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, k*T, C)`):
        The audio encoder's output at the vertex-aligned rate (F_p, or F_d for a fused encoder), before the model's
        own audio layers.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`, *optional*):
        The model's last hidden layer before its output layer.
    """

    loss: torch.FloatTensor | None = None
    vertices: torch.FloatTensor | None = None
    vertex_mask: torch.BoolTensor | None = None
    audio_features: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Audio resampling to the vertex frame rate
# ----------------------------------------------------------------------------------------------------------------------


def resample_frames(features: torch.Tensor, target: int, mode: str = "interpolate") -> torch.Tensor:
    """`(B, C, N)` -> `(B, C, target)`: linear interpolation with `align_corners=True` (FaceFormer's and CodeTalker's),
    or for `mode="truncate"` the first `target` frames (the caller makes sure there are enough)."""
    if mode == "truncate":
        if features.shape[-1] < target:
            raise ValueError(f"Cannot truncate {features.shape[-1]} frames to {target}.")
        return features[..., :target]
    if features.shape[-1] == target:
        return features
    return F.interpolate(features, size=target, mode="linear", align_corners=True)


def resample_batch(
    features: torch.Tensor, lengths: list[int], target_lengths: list[int], mode: str = "interpolate"
) -> torch.Tensor:
    """Resample each item's real frames `(B, C, N)` (its first `lengths[b]`) to its own target length; zero-pad to
    `(B, C, max(target_lengths))`."""
    frames = features.shape[-1]
    width = max(target_lengths)
    if all(n >= frames for n in lengths) and all(t == width for t in target_lengths):
        return resample_frames(features, width, mode)
    output = features.new_zeros(features.shape[0], features.shape[1], width)
    for b, (n, t) in enumerate(zip(lengths, target_lengths)):
        output[b, :, :t] = resample_frames(features[b : b + 1, :, : min(n, frames)], t, mode)[0]
    return output


def is_fused_encoder(module: nn.Module) -> bool:
    """A Wav2SemFusedEncoder, by model type: under remote code the class may come from another copy of the file."""
    return getattr(getattr(module, "config", None), "model_type", None) == Wav2SemFusedConfig.model_type


# ----------------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------------

# Labels (or an explicit `num_frames`) may exceed the frames the audio accounts for by this factor plus two frames
# (recordings often end a frame or two apart); beyond it the audio would be stretched to fit, which is refused.
MAX_FRAMES_PER_AUDIO = 1.25


def masked_mean_squared_error(prediction: torch.Tensor, labels: torch.Tensor, vertex_mask: torch.Tensor | None):
    """Mean over the real frames and all values of `(B, T, V3)` squared errors (in fp32)."""
    squared = (prediction.float() - labels.float()) ** 2
    if vertex_mask is None:
        return squared.mean()
    weights = vertex_mask[:, :, None].to(squared.dtype)
    return (squared * weights).sum() / (weights.sum() * squared.shape[-1])


# ----------------------------------------------------------------------------------------------------------------------
# Base class
# ----------------------------------------------------------------------------------------------------------------------


class AnimationPreTrainedModel(SavesFeatureExtractorMixin, PreTrainedModel):
    """The audio encoder (built, shared config, frozen parts), its feature extractor saved with the model, audio at the
    vertex frame rate, speaking styles, templates and labels: what every animation model does alike.

    A subclass sets `config_class`, `resample_point` (`"conv"` or `"output"`), builds its own layers after
    `self.init_audio_encoder(audio_encoder)` in `__init__`, calls `self.post_init()`, and implements `forward` and
    `predict` with the helpers below.
    """

    config: AnimationConfig
    config_class = AnimationConfig
    base_model_prefix = "animation"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True  # the audio encoder's layers
    _supports_sdpa = True
    resample_point = "conv"  # where the frames reach the vertex rate: "conv" (before the Transformer) or "output"

    # -- construction --------------------------------------------------------------------------------------------------

    def init_audio_encoder(self, audio_encoder: PreTrainedModel | None = None):
        """Build (or adopt) the audio encoder from `config.audio_config`, share its config and check the contract."""
        config = self.config
        if audio_encoder is None:
            if config.is_fused:
                audio_encoder = Wav2SemFusedEncoder(config.audio_config)
            else:
                audio_encoder = build_speech_backbone(config.audio_config)
        self.audio_encoder = audio_encoder
        self._share_audio_config()
        owner = self.speech_backbone
        parts = ("feature_extractor", "feature_projection", "encoder")
        if is_whisper(owner.config):
            parts = ("conv1", "conv2", "layers")
        for name in parts:
            if not isinstance(getattr(owner, name, None), nn.Module):
                raise ValueError(
                    f"{type(owner).__name__} is not a wav2vec2-family speech model (no `{name}`): the animation "
                    "models need a conv feature encoder, a feature projection and Transformer layers."
                )
        if getattr(owner.config, "add_adapter", False):
            raise ValueError("Audio encoders with an adapter (add_adapter=True) change the frame rate: not supported.")
        # The encoder's own feature extractor, when known (`from_audio_encoder`, `from_pretrained`); not a module.
        self.audio_feature_extractor: FeatureExtractionMixin | None = None

    def _share_audio_config(self):
        """One config object for the encoder, shared with `config.audio_config` (with the resolved attention)."""
        encoder, audio_config = self.audio_encoder, self.config.audio_config
        pairs = [(audio_config, encoder)]
        if is_fused_encoder(encoder):
            pairs += [(audio_config.audio_config, encoder.backbone), (audio_config.wav2sem_config, encoder.wav2sem)]
        for sub_config, module in pairs:
            if sub_config._attn_implementation is None:
                sub_config._attn_implementation = module.config._attn_implementation or self.config._attn_implementation
            module.config = sub_config

    def post_init(self):
        super().post_init()
        self._apply_freezing()

    def initialize_weights(self):
        # The audio encoder first, as the model it is: transformers passes our custom-code flag down to it, and under
        # custom code it skips the modules that own no tensors, which wav2vec2's `_init_weights` uses to initialise
        # its feature projection and positional conv (so weights missing from a checkpoint got another init than in
        # `__init__`). Its modules are then marked initialised and skipped below.
        self.audio_encoder.initialize_weights()
        super().initialize_weights()

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False):
        # Under custom code transformers would skip (vacuously) the modules that own no tensors; ours initialise only
        # tensors they own, but keep the same rule for the encoder's sake.
        super()._initialize_weights(module, is_custom_code=is_custom_code and owns_tensors(module))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        """PyTorch's default initialisations (the published models use them); subclasses add their own layers'."""
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.MultiheadAttention):  # nn.MultiheadAttention._reset_parameters
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)

    # -- freezing ------------------------------------------------------------------------------------------------------

    @property
    def speech_backbone(self) -> PreTrainedModel:
        """The speech model that owns the conv feature encoder: the encoder, or a fused encoder's backbone."""
        encoder = self.audio_encoder
        return encoder.backbone if is_fused_encoder(encoder) else encoder

    def _apply_freezing(self):
        if self.config.freeze_feature_encoder:
            self.freeze_feature_encoder()
        if is_fused_encoder(self.audio_encoder):
            self.audio_encoder.wav2sem.requires_grad_(False)
            self.audio_encoder.wav2sem.eval()

    def freeze_feature_encoder(self):
        """Stop gradients to the audio encoder's conv feature encoder (all the baselines keep the CNN frozen)."""
        freeze_conv_front_end(self.speech_backbone)

    def train(self, mode: bool = True):
        """As `nn.Module.train`; a fused encoder's Wav2Sem module stays in eval mode (no dropout, no LayerDrop)."""
        super().train(mode)
        if is_fused_encoder(self.audio_encoder):
            self.audio_encoder.wav2sem.eval()
        return self

    # -- loading and saving --------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As `PreTrainedModel.from_pretrained`, then the frozen parts are frozen again (loading resets the flags) and
        the checkpoint's feature extractor is kept, so `save_pretrained` writes it again."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._apply_freezing()
        model.audio_feature_extractor = _load_feature_extractor(pretrained_model_name_or_path, kwargs)
        return loaded

    @classmethod
    def from_audio_encoder(
        cls,
        audio_encoder: "str | PreTrainedModel",
        dataset: str | None = "vocaset",
        encoder_kwargs: dict | None = None,
        **config_kwargs,
    ) -> "AnimationPreTrainedModel":
        """A new model around a pre-trained audio encoder: a local folder or Hub id (loaded with `AutoModel`) or a
        model. The same call builds the baseline (a wav2vec2 / HuBERT checkpoint) and the Wav2Sem model (a
        `Wav2SemFusedEncoder`). `dataset` picks the preset; `config_kwargs` override config fields (`vertice_dim`,
        `train_subjects`, ...); `encoder_kwargs` go to `AutoModel.from_pretrained` (`revision`, `token`, `dtype`, ...).
        The encoder's feature extractor is kept and saved with the model. Everything but the encoder is new.
        """
        if isinstance(audio_encoder, PreTrainedModel):
            encoder = audio_encoder
            extractor = encoder.build_feature_extractor() if hasattr(encoder, "build_feature_extractor") else None
        else:
            encoder = speech_encoder_of(AutoModel.from_pretrained(audio_encoder, **(encoder_kwargs or {})))
            extractor = _load_feature_extractor(audio_encoder, encoder_kwargs or {})
            if is_whisper(encoder.config):  # its log-mel features are computed in the model, from raw audio
                check_whisper_feature_extractor(extractor, encoder.config)
                extractor = raw_audio_feature_extractor()
            elif extractor is None and hasattr(encoder, "build_feature_extractor"):
                extractor = encoder.build_feature_extractor()
        config = cls.config_class(audio_config=encoder.config, dataset=dataset, **config_kwargs)
        model = cls(config, audio_encoder=encoder)
        model.audio_feature_extractor = extractor
        return model

    def build_feature_extractor(self) -> FeatureExtractionMixin:
        """The audio encoder's feature extractor (wav2vec2-base-960h's settings, normalising, when it came with none),
        always returning attention masks: the model needs each item's length in a padded batch."""
        extractor = self.audio_feature_extractor
        if extractor is None and is_whisper(self.config.backbone_config):
            return raw_audio_feature_extractor(self.config.sampling_rate)
        if extractor is None:
            return Wav2Vec2FeatureExtractor(
                sampling_rate=self.config.sampling_rate, do_normalize=True, return_attention_mask=True
            )
        extractor = extractor.__class__.from_dict(extractor.to_dict())  # a copy
        extractor.return_attention_mask = True
        return extractor

    # -- audio ---------------------------------------------------------------------------------------------------------

    @property
    def audio_frames_per_vertex_frame(self) -> int:
        """k: audio frames per vertex frame at the vertex-aligned rate (FaceFormer's BIWI pairs 2; most models 1)."""
        return int(getattr(self.config, "audio_frames_per_vertex_frame", None) or 1)

    @property
    def audio_resampling(self) -> str:
        return getattr(self.config, "audio_resampling", None) or "interpolate"

    @property
    def receptive_field(self) -> int:
        """Samples one conv frame sees (400 for the wav2vec2 conv stack): the shortest audio the model accepts."""
        backbone = self.config.backbone_config
        if is_whisper(backbone):
            return WHISPER_N_FFT
        field, hop = 1, 1
        for kernel, stride in zip(backbone.conv_kernel, backbone.conv_stride):
            field += (kernel - 1) * hop
            hop *= stride
        return field

    def audio_frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Conv frames (50 Hz) for `(B,)` lengths in samples."""
        backbone = self.config.backbone_config
        if is_whisper(backbone):
            return whisper_frame_lengths(sample_lengths)
        return conv_output_lengths(sample_lengths, backbone.conv_kernel, backbone.conv_stride)

    def num_frames_for_audio(self, conv_lengths: list[int], frame_rate: float | None = None) -> list[int]:
        """Vertex frames for clips of `conv_lengths` conv frames: floor(N * frame_rate / audio_frame_rate), exact
        (`frame_rate` defaults to `config.frame_rate`; a model of several datasets passes the dataset's).

        (The published code computes `int(N / 50 * fps)` in floating point, one frame fewer for a few N, e.g. 205.)
        """
        frame_rate = frame_rate or self.config.frame_rate
        ratio = Fraction(frame_rate).limit_denominator(10**6) / Fraction(
            self.config.audio_frame_rate
        ).limit_denominator(10**6)
        return [int(n * ratio) for n in conv_lengths]

    def encode_audio(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | list[int] | torch.Tensor | None = None,
        frame_rate: float | None = None,
    ) -> tuple[torch.Tensor, list[int]]:
        r"""The audio encoder's output at the vertex-aligned rate, and each item's number of vertex frames.

        Args:
            input_values (`(B, L)`): audio as the encoder's feature extractor prepares it, right-padded.
            attention_mask (`(B, L)`, *optional*): 1 on real samples.
            num_frames: vertex frames per item (an int for all, or `(B,)`); by default from each clip's duration. At
                most `MAX_FRAMES_PER_AUDIO` times (plus 2) what the audio accounts for.
            frame_rate: the vertex frame rate (default `config.frame_rate`; a model of several datasets passes the
                dataset's).

        Returns:
            The features `(B, k * max(T_b), C)` (F_p, or F_d for a fused encoder) and the vertex frame counts `T_b`
            (with `audio_resampling="truncate"`, a clip with fewer than `k * T_b` conv frames keeps `N_b // k`).
        """
        lengths = validate_audio_inputs(input_values, attention_mask, self.receptive_field)
        batch, samples = input_values.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, dtype=torch.long, device=input_values.device)
            padded = False
        else:
            padded = True
        conv_lengths = [int(n) for n in self.audio_frame_lengths(lengths).tolist()]
        frame_rate = frame_rate or self.config.frame_rate
        expected = self.num_frames_for_audio(conv_lengths, frame_rate)
        if num_frames is None:
            frames = expected
        else:
            if isinstance(num_frames, int):
                frames = [num_frames] * batch
            else:
                frames = [int(n) for n in (num_frames.tolist() if torch.is_tensor(num_frames) else num_frames)]
            if len(frames) != batch:
                raise ValueError(f"num_frames has {len(frames)} entries for a batch of {batch}.")
            too_long = {
                b: (t, e) for b, (t, e) in enumerate(zip(frames, expected)) if t > MAX_FRAMES_PER_AUDIO * e + 2
            }
            if too_long:
                details = ", ".join(f"item {b}: {t} frames for audio of {e}" for b, (t, e) in too_long.items())
                raise ValueError(
                    f"Labels (or num_frames) far longer than their audio at {frame_rate:g} fps ({details}): "
                    "the audio would be stretched to fit. Check that audio and vertex files belong together."
                )
        if min(frames) < 1:
            raise ValueError(f"Every item needs at least one vertex frame (audio too short?), got {frames}.")
        k = self.audio_frames_per_vertex_frame
        if self.audio_resampling == "truncate":  # the published BIWI pairing: never stretch, cut the frames instead
            frames = [min(t, n // k) for t, n in zip(frames, conv_lengths)]
            if min(frames) < 1:
                raise ValueError(f"Audio too short for one vertex frame ({k} conv frames needed): {conv_lengths}.")
        targets = [k * t for t in frames]
        padded = padded or min(targets) < max(targets)
        features = self._run_audio_encoder(input_values, attention_mask, conv_lengths, targets, padded, lengths)
        return features, frames

    def resample_audio_frames(self, features: torch.Tensor, lengths: list[int], targets: list[int]) -> torch.Tensor:
        """`(B, C, N)` frames, each item's first `lengths[b]` real, to `targets[b]` frames each, zero-padded
        `(B, C, max(targets))`: `config.audio_resampling` (`"interpolate"`, `"truncate"`). A model whose published
        code resamples otherwise (VOCA's interpolation in time) overrides this."""
        return resample_batch(features, lengths, targets, self.audio_resampling)

    def _run_audio_encoder(
        self, input_values, attention_mask, conv_lengths, targets, padded: bool, sample_lengths: torch.Tensor
    ) -> torch.Tensor:
        """The encoder stage by stage (as its own `forward` runs them), with the frames brought to `targets` on the
        conv features or on the output (`resample_point`), the frame mask at that rate, and Wav2Sem fused in."""
        owner = self.speech_backbone
        if is_whisper(owner.config):
            hidden, _ = whisper_encoder_frames(owner, input_values, sample_lengths)
            return self._fuse_and_finish(hidden, input_values, attention_mask, conv_lengths, targets, padded, True)
        extract = owner.feature_extractor(input_values.to(owner.dtype))  # (B, C_conv, N)
        if self.resample_point == "conv":
            extract = self.resample_audio_frames(extract, conv_lengths, targets)
            frame_lengths = targets
        else:
            frame_lengths = conv_lengths
        extract = extract.transpose(1, 2)
        frame_mask = None
        if padded:
            frame_mask = lengths_to_mask(torch.tensor(frame_lengths, device=extract.device), extract.shape[1])
        projected = owner.feature_projection(extract)
        hidden = projected[0] if isinstance(projected, tuple) else projected
        # SpecAugment as the encoder's own forward applies it (only in training, only where its config asks for it).
        hidden = owner._mask_hidden_states(hidden, attention_mask=frame_mask)
        hidden = owner.encoder(hidden, attention_mask=frame_mask, return_dict=True).last_hidden_state
        return self._fuse_and_finish(
            hidden, input_values, attention_mask, conv_lengths, targets, padded, self.resample_point == "output"
        )

    def _fuse_and_finish(
        self, hidden, input_values, attention_mask, conv_lengths, targets, padded: bool, resample: bool
    ) -> torch.Tensor:
        """The encoder's output `(B, N, C)`: Wav2Sem fused in, brought to `targets` frames if not yet (`resample`),
        zero past each item's frames."""
        if is_fused_encoder(self.audio_encoder):
            semantic = self.audio_encoder.semantic_embeddings(input_values, attention_mask)
            hidden = self.audio_encoder.fuse(hidden, semantic)
        if resample:
            hidden = self.resample_audio_frames(hidden.transpose(1, 2), conv_lengths, targets).transpose(1, 2)
        if padded:  # zero past each item's frames, whatever the encoder left there
            hidden = hidden * lengths_to_mask(torch.tensor(targets, device=hidden.device), hidden.shape[1])[..., None]
        return hidden

    def encode_inputs(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
        num_frames: int | list[int] | torch.Tensor | None = None,
        vertice_dim: int | None = None,
        frame_rate: float | None = None,
    ) -> tuple[torch.Tensor, list[int], torch.Tensor | None, torch.Tensor | None]:
        """The first step of every model's `forward`: labels checked, audio encoded at the vertex-aligned rate for the
        labels' frames (or `num_frames`, or the audio's duration), labels cut to the frames the audio gives.
        `vertice_dim` and `frame_rate` default to the config's (a model of several datasets passes the dataset's).

        Returns:
            `audio_features` `(B, k*T, C)`, the frame counts `T_b`, `labels` `(B, T, V3)` or `None`, and the
            `(B, T)` `vertex_mask` of real frames (`None` when every item has all `T`).
        """
        if not torch.is_tensor(input_values) or input_values.dim() != 2:
            shape = tuple(input_values.shape) if torch.is_tensor(input_values) else type(input_values).__name__
            raise ValueError(f"input_values must be a (batch, samples) tensor of mono audio, got {shape}.")
        batch = input_values.shape[0]
        if labels is not None:
            labels, vertex_mask, num_frames = self.prepare_labels(labels, vertex_mask, batch, vertice_dim)
        audio_features, frames = self.encode_audio(input_values, attention_mask, num_frames, frame_rate)
        if labels is not None:  # the published BIWI pairing may keep fewer frames than the labels have
            labels, vertex_mask = self.fit_labels(labels, frames)
        else:
            vertex_mask = self.frames_to_mask(frames, input_values.device)
        return audio_features, frames, labels, vertex_mask

    # -- speakers, templates, labels -----------------------------------------------------------------------------------

    def style_one_hot(
        self, subject_index=None, subject_one_hot: torch.Tensor | None = None, batch: int = 1, device=None, dtype=None
    ) -> torch.Tensor:
        """`(B, S)` speaking-style weights from training-speaker indices or names (`subject_index`: an int, a str, a
        list or a `(B,)` tensor) or from a one-hot / mixing weights `(B, S)`."""
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
                raise ValueError(
                    f"subject_index must be in [0, {num_subjects}) (the training speakers), got {index.tolist()}."
                )
            subject_one_hot = F.one_hot(index, num_subjects)
        elif subject_one_hot.shape[-1] != num_subjects:
            raise ValueError(f"subject_one_hot must have {num_subjects} columns, got {tuple(subject_one_hot.shape)}.")
        subject_one_hot = subject_one_hot.to(device=device, dtype=dtype).reshape(-1, num_subjects)
        if subject_one_hot.shape[0] == 1:
            subject_one_hot = subject_one_hot.expand(batch, -1)
        if subject_one_hot.shape[0] != batch:
            raise ValueError(f"subject_one_hot has {subject_one_hot.shape[0]} rows for a batch of {batch}.")
        return subject_one_hot

    def flat_vertices(
        self, tensor: torch.Tensor, name: str, dims: int, vertice_dim: int | None = None
    ) -> torch.Tensor:
        """Accept `(..., V, 3)` as well as `(..., V*3)`; check the vertex count (`vertice_dim`, default the config's)
        and the number of dims."""
        if not torch.is_tensor(tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
        vertice_dim = vertice_dim or self.config.vertice_dim
        if tensor.shape[-1] == 3 and vertice_dim != 3 and tensor.dim() >= 2:
            tensor = tensor.flatten(-2)
        if tensor.shape[-1] != vertice_dim or tensor.dim() != dims:
            raise ValueError(
                f"{name} must have shape {'(B, T, V*3)' if dims == 3 else '(B, V*3)'} with "
                f"V*3 = vertice_dim = {vertice_dim} ({vertice_dim // 3} vertices; or V, 3 as the "
                f"last two dims), got {tuple(tensor.shape)}."
            )
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or Inf.")
        return tensor

    def prepare_template(
        self, template: torch.Tensor, batch: int, dtype, vertice_dim: int | None = None
    ) -> torch.Tensor:
        """`(B, V3)` templates from one template `(V3,)` / `(V, 3)` for the whole batch, or one per item."""
        if not torch.is_tensor(template):
            raise ValueError(f"template must be a torch.Tensor, got {type(template).__name__}.")
        template = template.to(dtype)
        vertice_dim = vertice_dim or self.config.vertice_dim
        if template.dim() == 1 or (template.dim() == 2 and template.shape[-1] == 3 and vertice_dim != 3):
            template = template[None]
        template = self.flat_vertices(template, "template", 2, vertice_dim)
        if template.shape[0] == 1 and batch > 1:
            template = template.expand(batch, -1)
        if template.shape[0] != batch:
            raise ValueError(f"template has batch size {template.shape[0]}, input_values {batch}.")
        return template

    def prepare_labels(
        self, labels: torch.Tensor, vertex_mask: torch.Tensor | None, batch: int, vertice_dim: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | int]:
        """Check `(B, T, V3)` labels and their right-padded `(B, T)` mask; returns them and the frame counts."""
        labels = self.flat_vertices(labels, "labels", 3, vertice_dim)
        if labels.shape[0] != batch:
            raise ValueError(f"labels has batch size {labels.shape[0]}, input_values {batch}.")
        if vertex_mask is None:
            return labels, None, labels.shape[1]
        if vertex_mask.shape != labels.shape[:2]:
            raise ValueError(f"vertex_mask must have shape {tuple(labels.shape[:2])}, got {tuple(vertex_mask.shape)}.")
        vertex_mask = vertex_mask.bool()
        if bool((vertex_mask[:, 1:] & ~vertex_mask[:, :-1]).any()):
            raise ValueError("vertex_mask must be right-padded: ones for the real frames, then zeros.")
        return labels, vertex_mask, vertex_mask.sum(-1)

    @staticmethod
    def frames_to_mask(frames: list[int], device) -> torch.Tensor | None:
        """`(B, max(frames))` mask of each item's real frames; `None` when all items have all frames."""
        total = max(frames)
        if min(frames) == total:
            return None
        return lengths_to_mask(torch.tensor(frames, device=device), total)

    @staticmethod
    def fit_labels(labels: torch.Tensor, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Labels cut to the frames the audio gives (the published BIWI pairing keeps `N // 2`), and their mask."""
        total = max(frames)
        labels = labels[:, :total]
        mask = AnimationPreTrainedModel.frames_to_mask(frames, labels.device)
        return labels, mask


__all__ = ["AnimationOutput", "AnimationPreTrainedModel", "is_fused_encoder", "resample_batch", "resample_frames"]
