"""Convert a checkpoint published with FaceFormer (Fan et al., CVPR 2022; github.com/EvelynFan/FaceFormer) into a
[`FaceFormerForAnimation`] folder.

    python -m modeling_wav2sem.convert_faceformer_original_checkpoint --checkpoint vocaset.pth --dataset vocaset \
        --output_dir faceformer-vocaset [--audio_encoder facebook/wav2vec2-base-960h] [--train_subjects S1 S2 ...]

The published `vocaset.pth` / `biwi.pth` are the plain `state_dict()` of the original `Faceformer` module, written by
`torch.save` (read here with `torch.load(..., weights_only=True)`: no code is unpickled). Its keys:

- `audio_encoder.*`: transformers' `Wav2Vec2Model` (wav2vec2-base-960h architecture, `masked_spec_embed` included),
  saved with transformers 4.6 / torch 1.9, so the positional conv's weight norm is stored under the old
  `...pos_conv_embed.conv.weight_g` / `weight_v` names (the newer `parametrizations.weight.original0` / `original1`
  names are accepted too);
- `audio_feature_map.{weight,bias}` Linear(768, d), `vertice_map.{weight,bias}` Linear(V*3, d),
  `vertice_map_r.{weight,bias}` Linear(d, V*3), `obj_vector.weight` Linear(num_subjects, d, bias=False);
- `transformer_decoder.layers.0.*`: one `nn.TransformerDecoderLayer` (4 heads, feed-forward 2*d);
- `PPE.pe`: the buffer of the periodic positional encoding, `(1, period * (600 // period + 1), d)`.

The original's temporal-bias mask (`biased_mask`, `(4, 600, 600)`) is a plain attribute, not a buffer, so it is not in
the published files; a checkpoint that has it anyway is accepted. Our module names follow the original, so the
mapping is the identity but for the weight-norm names and these two non-parameter tensors, which our model computes
on demand for any length: they are checked to equal what our model computes (this also checks the dataset's period)
and then left out.

What is read from the shapes: V*3 (`vertice_map_r.weight`), d (`audio_feature_map.weight`) and the number of training
speakers (`obj_vector.weight`). What comes from the dataset preset (`--dataset`): the period, the frame rate, the
audio frames per vertex frame, and the training speakers' names (`--train_subjects` to override; they must be as many
as the columns of `obj_vector.weight`). The encoder's architecture comes from `--audio_encoder`'s config only (its
weights are in the checkpoint). Every tensor of the checkpoint must land on exactly one tensor of the model with the
same shape, and every tensor of the model must come from the checkpoint: anything else raises a `ValueError` naming
all missing, unexpected and mis-shaped keys.

The output folder holds `config.json` (with `auto_map`), `model.safetensors`, the model code and
`preprocessor_config.json`: the encoder folder's `Wav2Vec2FeatureExtractor`, or when it has none wav2vec2-base-960h's
settings (16 kHz, per-utterance zero-mean unit-variance normalisation, as the original demo's processor), written by
the model's `save_pretrained`, which switches its attention mask on (the model needs each item's length in a padded
batch; for one clip the values are the same). It loads with `AutoModel.from_pretrained` (after
`import modeling_wav2sem`) and `AutoFeatureExtractor.from_pretrained`.
"""

import argparse
from collections.abc import Mapping

import torch
from transformers import AutoConfig, PreTrainedConfig, Wav2Vec2FeatureExtractor

from .configuration_faceformer import FaceFormerConfig
from .conversion_utils import rename_state_dict, state_dict_mismatches, tensor_shape
from .modeling_faceformer import FaceFormerForAnimation, biased_causal_mask, periodic_positional_encoding

DATASETS = ("vocaset", "biwi")
# Old `torch.nn.utils.weight_norm` names (torch 1.9, as published) -> the `parametrizations` names our encoder uses.
WEIGHT_NORM = {
    "audio_encoder.encoder.pos_conv_embed.conv.weight_g": (
        "audio_encoder.encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    ),
    "audio_encoder.encoder.pos_conv_embed.conv.weight_v": (
        "audio_encoder.encoder.pos_conv_embed.conv.parametrizations.weight.original1"
    ),
}
# The original's non-parameter tensors: our model computes them on demand (checked, then left out).
POSITIONAL_ENCODING = "PPE.pe"
TEMPORAL_BIAS = "biased_mask"
PUBLISHED_BUFFERS = (POSITIONAL_ENCODING, TEMPORAL_BIAS)
PUBLISHED_NUM_HEADS = 4  # hard-coded in the original (decoder layer and temporal bias); not readable from shapes
# The tensors whose shapes give V*3, d and the number of speakers.
_SHAPE_KEYS = ("audio_feature_map.weight", "vertice_map.weight", "vertice_map_r.weight", "obj_vector.weight")


def build_config(
    audio_config: PreTrainedConfig,
    dataset: str,
    vertice_dim: int,
    feature_dim: int,
    train_subjects: list[str] | None = None,
) -> FaceFormerConfig:
    """The `FaceFormerConfig` of a published checkpoint: the dataset preset with the shapes read from the weights.

    `train_subjects=None` keeps the preset's speakers. The published BIWI model crops the 50 Hz conv features (to an
    even count, then to two per vertex frame) instead of interpolating them, so BIWI gets `audio_resampling=
    "truncate"`; VOCASET interpolates. The original's decoder has 4 heads (not readable from the shapes).
    """
    return FaceFormerConfig.from_preset(
        dataset,
        audio_config=audio_config,
        vertice_dim=vertice_dim,
        feature_dim=feature_dim,
        train_subjects=train_subjects,
        num_attention_heads=PUBLISHED_NUM_HEADS,
        audio_resampling="truncate" if dataset == "biwi" else "interpolate",
    )



def rename_published_key(key: str) -> str:
    """Published key -> our key: the identity, except the old weight-norm names of the positional conv."""
    return WEIGHT_NORM.get(key, key)


def infer_dimensions(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """`vertice_dim`, `feature_dim`, `num_subjects` and `audio_hidden_size`, read from the shapes (our key names).

    Raises `ValueError` when a tensor needed for this is missing or the four Linear layers disagree.
    """
    missing = [key for key in _SHAPE_KEYS if key not in state_dict]
    if missing:
        raise ValueError(
            "Cannot read the FaceFormer dimensions: the checkpoint lacks " + ", ".join(repr(k) for k in missing) + "."
        )
    shapes = {key: tensor_shape(state_dict[key]) for key in _SHAPE_KEYS}
    if any(len(shape) != 2 for shape in shapes.values()):
        raise ValueError(f"These Linear weights must be 2-D: {shapes}.")
    feature_dim, audio_hidden_size = shapes["audio_feature_map.weight"]
    vertice_dim = shapes["vertice_map_r.weight"][0]
    num_subjects = shapes["obj_vector.weight"][1]
    expected = {
        "vertice_map.weight": (feature_dim, vertice_dim),
        "vertice_map_r.weight": (vertice_dim, feature_dim),
        "obj_vector.weight": (feature_dim, num_subjects),
    }
    wrong = [f"{key} {shapes[key]} (expected {shape})" for key, shape in expected.items() if shapes[key] != shape]
    if wrong:
        raise ValueError(
            f"Inconsistent shapes: with d={feature_dim} (audio_feature_map.weight) and V*3={vertice_dim} "
            "(vertice_map_r.weight), wrong shapes: " + ", ".join(wrong) + "."
        )
    return {
        "vertice_dim": vertice_dim,
        "feature_dim": feature_dim,
        "num_subjects": num_subjects,
        "audio_hidden_size": audio_hidden_size,
    }


def check_published_buffers(buffers: Mapping[str, torch.Tensor], config: FaceFormerConfig) -> None:
    """Check that the original's `PPE.pe` (and `biased_mask`, if present) equal what our model computes for `config`.

    Raises `ValueError` otherwise: typically a checkpoint trained with another period than the dataset's.
    """
    if POSITIONAL_ENCODING in buffers:
        pe = buffers[POSITIONAL_ENCODING]
        if pe.dim() != 3 or pe.shape[0] != 1 or pe.shape[2] != config.feature_dim:
            raise ValueError(
                f"{POSITIONAL_ENCODING} has shape {tensor_shape(pe)}; expected (1, n, {config.feature_dim})."
            )
        table = periodic_positional_encoding(config.period, config.feature_dim)
        ours = table[torch.arange(pe.shape[1]) % config.period][None]
        if not torch.allclose(pe.float(), ours, atol=1e-5, rtol=0):
            raise ValueError(
                f"{POSITIONAL_ENCODING} is not the periodic positional encoding with period {config.period} (the "
                f"{config.dataset!r} preset's): the checkpoint was trained with another period or dataset."
            )
    if TEMPORAL_BIAS in buffers:
        bias = buffers[TEMPORAL_BIAS]
        heads = config.num_attention_heads
        if bias.dim() != 3 or bias.shape[0] != heads or bias.shape[1] != bias.shape[2]:
            raise ValueError(f"{TEMPORAL_BIAS} has shape {tensor_shape(bias)}; expected ({heads}, n, n).")
        ours = biased_causal_mask(heads, bias.shape[1], config.period)
        if not torch.allclose(bias.float(), ours, atol=1e-5, rtol=0):
            raise ValueError(
                f"{TEMPORAL_BIAS} is not the temporal bias of {heads} heads with period {config.period} (the "
                f"{config.dataset!r} preset's): the checkpoint was trained with other settings."
            )


def convert_published_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    audio_config: PreTrainedConfig,
    dataset: str,
    train_subjects: list[str] | None = None,
) -> tuple[FaceFormerConfig, dict[str, torch.Tensor]]:
    """Published `Faceformer` state dict -> (our config, our state dict).

    Args:
        state_dict: what the original's `torch.save(model.state_dict(), ...)` wrote.
        audio_config: the config of the checkpoint's audio encoder (a wav2vec2 config; only the architecture is used).
        dataset: `"vocaset"` or `"biwi"` (case-insensitive): the preset for the period, frame rate and speakers.
        train_subjects: the training speakers, in the order of the one-hot; default: the preset's.

    Returns:
        The config and a state dict with exactly the keys and shapes of `FaceFormerForAnimation(config).state_dict()`,
        so it loads with `strict=True`.

    Raises:
        ValueError: naming every missing, unexpected, duplicated or mis-shaped tensor, or a dataset, encoder or
            speaker list that does not fit the checkpoint.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"Expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}.")
    not_tensors = sorted(k for k, v in state_dict.items() if not torch.is_tensor(v))
    if not_tensors:
        raise ValueError(f"The state dict holds values that are not tensors under {not_tensors}.")
    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} (case-insensitive), got {dataset!r}.")
    if audio_config.model_type != "wav2vec2":
        raise ValueError(
            f"The published FaceFormer's audio encoder is a wav2vec2 model; --audio_encoder describes a "
            f"{audio_config.model_type!r} model."
        )

    # 1. Our key names; the original's non-parameter tensors aside.
    renamed, buffers, sources = rename_state_dict(state_dict, rename_published_key, PUBLISHED_BUFFERS)

    # 2. The config: the dataset preset with the dimensions read from the shapes.
    dims = infer_dimensions(renamed)
    if dims["audio_hidden_size"] != audio_config.hidden_size:
        raise ValueError(
            f"audio_feature_map.weight takes {dims['audio_hidden_size']} features but the audio encoder's config has "
            f"hidden_size {audio_config.hidden_size}: does --audio_encoder describe the checkpoint's encoder?"
        )
    if train_subjects is not None and len(train_subjects) != dims["num_subjects"]:
        raise ValueError(
            f"obj_vector.weight has {dims['num_subjects']} columns (training speakers) but {len(train_subjects)} "
            f"train_subjects were given: {list(train_subjects)}."
        )
    config = build_config(audio_config, dataset, dims["vertice_dim"], dims["feature_dim"], train_subjects)
    if config.num_subjects != dims["num_subjects"]:
        raise ValueError(
            f"obj_vector.weight has {dims['num_subjects']} columns (training speakers) but the {dataset!r} preset "
            f"has {config.num_subjects} ({config.train_subjects}): pass --train_subjects in the order of training."
        )
    check_published_buffers(buffers, config)

    # 3. Every tensor of the model from exactly one tensor of the checkpoint, with the same shape.
    with torch.device("meta"):
        expected = {k: tensor_shape(v) for k, v in FaceFormerForAnimation(config).state_dict().items()}
    details = state_dict_mismatches(
        expected, renamed, lambda k: k if sources[k] == k else f"{sources[k]} -> {k}"
    )
    if details:
        hint = ""
        if "audio_encoder." in " ".join(details):
            hint = " (audio_encoder.* keys: does --audio_encoder's config describe the checkpoint's encoder?)"
        raise ValueError(
            f"The checkpoint does not match FaceFormer ({dataset}, vertice_dim={config.vertice_dim}, "
            f"feature_dim={config.feature_dim}, {config.num_subjects} speakers, encoder hidden_size="
            f"{config.audio_hidden_size}); " + "; ".join(details) + hint
        )
    return config, renamed


def read_published_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a published checkpoint file (a plain state dict), on the CPU."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict.")
    return dict(checkpoint)


def load_published_checkpoint(
    path: str, audio_config: PreTrainedConfig, dataset: str, train_subjects: list[str] | None = None
) -> FaceFormerForAnimation:
    """A `FaceFormerForAnimation` (in eval mode) holding the weights of a published checkpoint file."""
    config, state_dict = convert_published_state_dict(
        read_published_state_dict(path), audio_config, dataset, train_subjects
    )
    model = FaceFormerForAnimation(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def feature_extractor_for(audio_encoder: str) -> Wav2Vec2FeatureExtractor:
    """The encoder folder's (or Hub repo's) `Wav2Vec2FeatureExtractor`; wav2vec2-base-960h's settings when it has none
    (16 kHz, zero-mean unit-variance per utterance, no attention mask: what the original demo feeds the model)."""
    try:
        return Wav2Vec2FeatureExtractor.from_pretrained(audio_encoder)
    except OSError:
        return Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a checkpoint published with FaceFormer (vocaset.pth, biwi.pth) to a Hugging Face folder.",
        epilog="V*3, d and the number of speakers are read from the tensor shapes; the period, frame rate and speaker "
        "names come from --dataset (and --train_subjects); the encoder architecture from --audio_encoder's config.",
    )
    parser.add_argument("--checkpoint", required=True, help="the published state dict, e.g. vocaset.pth or biwi.pth")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=DATASETS, help="vocaset or biwi")
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument(
        "--audio_encoder", default="facebook/wav2vec2-base-960h",
        help="local folder or Hub id whose config describes the encoder (default facebook/wav2vec2-base-960h, as "
        "published); only its config (and feature extractor, if any) is read: the weights come from the checkpoint",
    )
    parser.add_argument(
        "--train_subjects", nargs="+", default=None,
        help="the training speakers in the order of the one-hot (default: the dataset's published training split)",
    )
    args = parser.parse_args(argv)

    audio_config = AutoConfig.from_pretrained(args.audio_encoder)
    model = load_published_checkpoint(args.checkpoint, audio_config, args.dataset, args.train_subjects)
    feature_extractor = feature_extractor_for(args.audio_encoder)
    model.audio_feature_extractor = feature_extractor  # written by save_pretrained, with attention masks switched on
    model.save_pretrained(args.output_dir)
    config = model.config
    print(
        f"Converted {args.checkpoint} -> {args.output_dir}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"dataset={config.dataset}, vertice_dim={config.vertice_dim}, feature_dim={config.feature_dim}, "
        f"period={config.period}, {config.num_subjects} speakers, audio_resampling={config.audio_resampling}, "
        f"feature extractor: do_normalize={feature_extractor.do_normalize}, "
        f"sampling_rate={feature_extractor.sampling_rate}"
    )


if __name__ == "__main__":
    main()
