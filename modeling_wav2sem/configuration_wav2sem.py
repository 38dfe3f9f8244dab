# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configurations of Wav2Sem (CVPR 2025) and of the fused encoder that plugs it into a speech backbone.

This file imports only `transformers` (and the standard library) so that it doubles as Hub remote code.
"""

import copy
import functools
import operator

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Named architectures, one registry (like timm's). `Wav2SemConfig.from_preset(name, **overrides)` reads it.
WAV2SEM_PRESETS: dict[str, dict] = {
    # The official encoder as coded (wav2vec2-base from scratch, 94,370,944 parameters): 7 conv layers of 512
    # channels with group norm on the first, post-LN Transformer, 12 layers, 12 heads, hidden 768, FFN 3072,
    # dropouts 0.1 and LayerDrop 0.1. No projection head: 768 equals BERT-base's size.
    "paper": {},
    # Fast on CPU; hidden 384 matches the offline MiniLM teacher (all-MiniLM-L6-v2). Same hop and receptive field.
    "small": {
        "conv_dim": (256,) * 7,
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
        "num_conv_pos_embeddings": 64,
        "num_conv_pos_embedding_groups": 16,
        "layerdrop": 0.0,
        # Dropout where it is cheap (projections, residuals); none on the FFN activations or attention maps.
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
    },
    # The trainable part over a frozen pre-trained front end (`Wav2SemModel.from_front_end`): the small preset's width
    # and heads, 2 layers (the front end's frames already carry the words); its conv fields are unused.
    "frontend": {
        "hidden_size": 384,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
        "num_conv_pos_embeddings": 64,
        "num_conv_pos_embedding_groups": 16,
        "layerdrop": 0.0,
        "activation_dropout": 0.0,
        "attention_dropout": 0.0,
    },
    # For tests: under 1M parameters, but the standard 400-sample receptive field and 320-sample hop.
    "tiny": {
        "conv_dim": (32,) * 7,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
        "layerdrop": 0.0,
    },
}


class Wav2SemConfig(PreTrainedConfig):
    r"""
    Configuration of [`Wav2SemModel`]: a wav2vec2-style audio encoder (conv feature encoder, feature projection,
    convolutional positional embedding, Transformer) whose mean-pooled output, the sentence vector F_s, is trained to
    match a text encoder's sentence embedding of the transcript.

    The defaults are the `paper` preset: the official Wav2Sem encoder as coded (see `WAV2SEM_PRESETS`).

    Args:
        hidden_size (`int`, defaults to 768): width of the Transformer.
        num_hidden_layers (`int`, defaults to 12): Transformer layers.
        num_attention_heads (`int`, defaults to 12): attention heads (the official code uses 12; the paper text says 8).
        intermediate_size (`int`, defaults to 3072): feed-forward width.
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation.
        hidden_dropout, activation_dropout, attention_dropout, feat_proj_dropout (`float`, default 0.1): dropouts.
        layerdrop (`float`, defaults to 0.1): probability of skipping a whole Transformer layer in training.
        layer_norm_eps (`float`, defaults to 1e-5): LayerNorm epsilon.
        feat_extract_norm (`str`, defaults to `"group"`): `"group"` (GroupNorm on the first conv layer only, as
            wav2vec2-base) or `"layer"` (LayerNorm after every conv layer).
        feat_extract_activation (`str`, defaults to `"gelu"`): conv activation.
        conv_dim, conv_stride, conv_kernel (`tuple[int]`): channels, strides and kernels of the conv layers. The
            defaults give a 320-sample hop (20 ms at 16 kHz) and a 400-sample receptive field.
        conv_bias (`bool`, defaults to `False`): bias in the conv layers.
        num_conv_pos_embeddings (`int`, defaults to 128): kernel of the positional convolution.
        num_conv_pos_embedding_groups (`int`, defaults to 16): groups of the positional convolution.
        do_stable_layer_norm (`bool`, defaults to `False`): pre-LN Transformer layers if `True`; the official
            encoder is post-LN.
        target (`str`, defaults to `"cls"`): the teacher vector F_s is trained to match: `"cls"` (variant c, the
            [CLS] vector) or `"mean"` (variant m, the mean of the token vectors).
        text_embed_dim (`int`, *optional*): size of the teacher's vectors. A linear projection head maps the pooled
            hidden state to it when it differs from `hidden_size`; none otherwise (as in `paper`).
        teacher_name_or_path (`str`, *optional*): the text encoder that produced the targets (information only).
        sampling_rate (`int`, defaults to 16000): sampling rate of the input audio.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal initialiser of linear layers.
        front_end_config (`dict` or `PreTrainedConfig`, *optional*): a frozen pre-trained speech encoder (Whisper's
            encoder, or a HuBERT / Wav2Vec2 / WavLM model) whose 50 Hz frames replace the conv feature encoder: the
            feature projection, positional conv, Transformer and pooling then run on its frames. `None` (default, the
            paper's architecture) learns from raw audio. Build one with `Wav2SemModel.from_front_end`.

    Example:

    ```python
    >>> from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
    >>> config = Wav2SemConfig.from_preset("small", target="mean")
    >>> model = Wav2SemModel(config)
    ```
    """

    model_type = "wav2sem"
    sub_configs_defaults = {
        "front_end_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper", optional=True),
    }

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout: float | int = 0.1
    activation_dropout: float | int = 0.1
    attention_dropout: float | int = 0.1
    feat_proj_dropout: float | int = 0.1
    layerdrop: float | int = 0.1
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: list[int] | tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_stride: list[int] | tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: list[int] | tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    target: str = "cls"
    text_embed_dim: int | None = None
    teacher_name_or_path: str | None = None
    sampling_rate: int = 16000
    initializer_range: float = 0.02
    front_end_config: dict | PreTrainedConfig | None = None

    def __post_init__(self, **kwargs):
        self.text_embed_dim = self.text_embed_dim or self.hidden_size
        super().__post_init__(**kwargs)
        self.validate_architecture()

    def validate_architecture(self):
        """Part of `@strict`-powered validation: reject inconsistent architectures with a clear message."""
        if not (len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel)):
            raise ValueError(
                "conv_dim, conv_stride and conv_kernel must have the same length, got "
                f"{len(self.conv_dim)}, {len(self.conv_stride)} and {len(self.conv_kernel)}."
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                f"({self.num_conv_pos_embedding_groups})."
            )
        if self.target not in ("cls", "mean"):
            raise ValueError(f"target must be 'cls' (variant c) or 'mean' (variant m), got {self.target!r}.")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}.")

    @property
    def frame_input_size(self) -> int:
        """Width of the frames the feature projection takes: the front end's hidden size, else the last conv layer's."""
        if self.front_end_config is not None:
            return self.front_end_config.hidden_size
        return self.conv_dim[-1]

    @property
    def normalizes_audio(self) -> bool:
        """Whether the model takes audio normalised per utterance (its own conv stack, wav2vec2-family front ends) or
        the raw waveform (a Whisper front end, whose log-mel features expect it)."""
        return getattr(self.front_end_config, "model_type", None) != "whisper"

    @property
    def num_feat_extract_layers(self) -> int:
        return len(self.conv_dim)

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Samples per output frame (the hop): 320 for the standard conv stack."""
        return functools.reduce(operator.mul, self.conv_stride, 1)

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame, and so the shortest valid input: 400 for the standard conv stack."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "Wav2SemConfig":
        """Build the config of a named preset (`paper`, `small`, `tiny`), with keyword overrides."""
        if name not in WAV2SEM_PRESETS:
            raise ValueError(f"Unknown Wav2Sem preset {name!r}; available: {', '.join(sorted(WAV2SEM_PRESETS))}.")
        return cls(**{**copy.deepcopy(WAV2SEM_PRESETS[name]), **overrides})


class Wav2SemFusedConfig(PreTrainedConfig):
    r"""
    Configuration of [`Wav2SemFusedEncoder`]: any HuBERT / Wav2Vec2 / WavLM / Data2VecAudio speech encoder (the
    backbone, frame features F_p) plus a frozen Wav2Sem (sentence vector F_s), fused for every frame as
    `F_d = FC2(FC1(F_s) + F_p)`.

    Args:
        audio_config (`dict` or `PreTrainedConfig`, *optional*): the backbone's config, built with `AutoConfig` from
            its `model_type`. Defaults to a HuBERT-base config.
        wav2sem_config (`dict` or [`Wav2SemConfig`], *optional*): the Wav2Sem module's config (`paper` by default).
        output_dim (`int`, *optional*): width of FC2. `None` (default) makes FC2 the identity, so the fused features
            keep the backbone's width and drop into code written for the backbone; downstream models whose own input
            projection plays FC2 (as in the official port) keep it `None`.
        fusion_init (`str`, defaults to `"zeros"`): initialisation of FC1. `"zeros"` starts the fused encoder exactly
            at the backbone's features (the semantic term is learnt from there); `"normal"` draws N(0, 0.02).
        backbone_attention_mask (`bool`, *optional*): whether the backbone is given the `attention_mask`, as its own
            feature extractor's `return_attention_mask` says. Group-norm checkpoints such as hubert-base and
            wav2vec2-base were trained without one and take zero-padded audio instead. Wav2Sem always uses the mask.
            Defaults to `True` for backbones with layer-norm conv features and `False` for group-norm ones.

    Example:

    ```python
    >>> from transformers import HubertConfig
    >>> from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedConfig, Wav2SemFusedEncoder
    >>> config = Wav2SemFusedConfig(audio_config=HubertConfig(), wav2sem_config=Wav2SemConfig.from_preset("paper"))
    >>> model = Wav2SemFusedEncoder(config)
    ```
    """

    model_type = "wav2sem-fused"
    sub_configs_defaults = {
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="hubert"),
        "wav2sem_config": SubConfigSpec(config_class=Wav2SemConfig),
    }

    audio_config: dict | PreTrainedConfig | None = None
    wav2sem_config: dict | PreTrainedConfig | None = None
    output_dim: int | None = None
    fusion_init: str = "zeros"
    backbone_attention_mask: bool | None = None

    def __post_init__(self, **kwargs):
        derived = sorted(set(kwargs) & {"hidden_size", "num_hidden_layers"})
        if derived:
            raise ValueError(
                f"{', '.join(derived)} of a Wav2SemFusedConfig come from its sub-configs: set them in `audio_config` "
                "(the backbone), or set `output_dim` for the fused width."
            )
        super().__post_init__(**kwargs)
        if self.backbone_attention_mask is None:
            self.backbone_attention_mask = getattr(self.audio_config, "feat_extract_norm", "layer") == "layer"
        self.validate_architecture()

    def validate_architecture(self):
        """Part of `@strict`-powered validation."""
        if self.fusion_init not in ("zeros", "normal"):
            raise ValueError(f"fusion_init must be 'zeros' or 'normal', got {self.fusion_init!r}.")

    @property
    def hidden_size(self) -> int:
        """Width of the fused features (the backbone's unless `output_dim` is set)."""
        return self.output_dim or self.audio_config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        """The backbone's depth: `hidden_states` and `attentions` are the backbone's."""
        return self.audio_config.num_hidden_layers


__all__ = ["WAV2SEM_PRESETS", "Wav2SemConfig", "Wav2SemFusedConfig"]
