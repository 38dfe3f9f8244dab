"""Convert a checkpoint of the official Wav2Sem training script into this package's format.

    python -m modeling_wav2sem.convert_wav2sem_original_checkpoint --checkpoint model.pth.tar --output_dir wav2sem-c \
        [--target cls|mean] [--teacher_name_or_path bert-base-uncased] [--preset paper] [--num_attention_heads 12]

The official checkpoint is a torch pickle `{'state_dict': {...}}` (a bare state dict is accepted too) with keys such
as `FeatureExtractor.conv_layers.0.conv.weight` and `Encoder.pos_conv_embed.conv.weight_g`, possibly all prefixed by
`module.` (DistributedDataParallel). It is read with `torch.load(..., weights_only=True)`: no code is unpickled.

What is read from the tensor shapes: the conv channels and kernels, the number of conv layers, whether the conv
layers have biases, the conv norm (`"group"`: a norm on layer 0 only; `"layer"`: on every layer), the hidden size,
the number of Transformer layers, the FFN width, the positional conv's kernel and groups.

What cannot be read from shapes and so comes from the preset (`--preset`, `paper` by default, i.e. the official
architecture) or an explicit option: the number of attention heads (`--num_attention_heads`, 12 in the official
code although the paper text says 8), the conv strides, pre- or post-LN layers (`do_stable_layer_norm`; the official
encoder is post-LN), activations, epsilons and dropouts.

Every tensor of the checkpoint must land on exactly one tensor of the model with the same shape, and every tensor of
the model must come from the checkpoint, except the two buffers `target_shift` / `target_scale` that this package adds
(the folded-in target statistics), which are set to the identity (zeros / ones). Anything else raises a `ValueError`
that lists all the missing, unexpected and mis-shaped keys: nothing is dropped silently.

The output folder holds `config.json` (with `auto_map`), `model.safetensors`, the model code, and
`preprocessor_config.json` (a `Wav2Vec2FeatureExtractor`: 16 kHz, per-utterance normalisation, attention mask), so it
loads with `AutoModel.from_pretrained` / `AutoFeatureExtractor.from_pretrained`.
"""

import argparse
import re
from collections.abc import Mapping

import torch

from .configuration_wav2sem import WAV2SEM_PRESETS, Wav2SemConfig
from .conversion_utils import state_dict_mismatches, tensor_shape
from .modeling_wav2sem import Wav2SemModel

DDP_PREFIX = "module."
PREFIXES = {"FeatureExtractor.": "feature_extractor.", "FeatureProjection.": "feature_projection.", "Encoder.": "encoder."}
# Old `torch.nn.utils.weight_norm` names -> the `torch.nn.utils.parametrizations.weight_norm` names our model uses.
WEIGHT_NORM = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
BUFFERS = ("target_shift", "target_scale")  # ours: the folded-in target statistics, identity for official weights

_CONV = re.compile(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$")
_LAYER = re.compile(r"encoder\.layers\.(\d+)\.")
# The tensors whose shapes define the architecture; without them nothing can be inferred.
_SHAPE_KEYS = (
    "feature_projection.projection.weight",
    "encoder.layers.0.feed_forward.intermediate_dense.weight",
    WEIGHT_NORM["encoder.pos_conv_embed.conv.weight_v"],
)


def _to_ours(key: str) -> str | None:
    """Official key (without `module.`) -> our key, or `None` for a key that is not part of the official encoder."""
    for old, new in PREFIXES.items():
        if key.startswith(old):
            key = new + key[len(old) :]
            return WEIGHT_NORM.get(key, key)
    return None


def rename_official_key(key: str) -> str:
    """Official key -> our key (`module.` prefixes dropped). Raises `ValueError` for a key of no known module."""
    stripped = key
    while stripped.startswith(DDP_PREFIX):
        stripped = stripped[len(DDP_PREFIX) :]
    new_key = _to_ours(stripped)
    if new_key is None:
        raise ValueError(f"Unexpected key {key!r} in the official checkpoint.")
    return new_key



def infer_config(state_dict: Mapping[str, torch.Tensor], preset: str = "paper", **overrides) -> Wav2SemConfig:
    """The architecture of a state dict with our key names, read from its shapes; the rest from `preset`.

    `overrides` (e.g. `num_attention_heads`, `target`, `teacher_name_or_path`, `conv_stride`) win over both.
    Raises `ValueError` when a tensor needed for the inference is missing or the shapes are inconsistent.
    """
    if preset not in WAV2SEM_PRESETS:
        raise ValueError(f"Unknown Wav2Sem preset {preset!r}; available: {', '.join(sorted(WAV2SEM_PRESETS))}.")
    base = Wav2SemConfig.from_preset(preset)
    conv_ids = sorted(int(m.group(1)) for k in state_dict if (m := _CONV.match(k)))
    layer_ids = sorted({int(m.group(1)) for k in state_dict if (m := _LAYER.match(k))})
    missing = [k for k in _SHAPE_KEYS if k not in state_dict]
    if not conv_ids:
        missing.insert(0, "feature_extractor.conv_layers.0.conv.weight")
    if missing:
        raise ValueError(
            "Cannot infer the architecture: the checkpoint lacks "
            + ", ".join(repr(k) for k in missing)
            + " (with our key names; official names start with FeatureExtractor. / FeatureProjection. / Encoder.)."
        )
    if conv_ids != list(range(len(conv_ids))):
        raise ValueError(f"The conv layers are not numbered 0..N-1: found conv weights for layers {conv_ids}.")
    if layer_ids != list(range(len(layer_ids))):
        raise ValueError(f"The Transformer layers are not numbered 0..N-1: found layers {layer_ids}.")

    conv_shapes = [tensor_shape(state_dict[f"feature_extractor.conv_layers.{i}.conv.weight"]) for i in conv_ids]
    if any(len(s) != 3 for s in conv_shapes):
        raise ValueError(f"Conv weights must be 3-D (out, in, kernel); got shapes {conv_shapes}.")
    conv_dim = tuple(s[0] for s in conv_shapes)
    conv_kernel = tuple(s[2] for s in conv_shapes)
    conv_stride = tuple(overrides.pop("conv_stride", base.conv_stride))
    if len(conv_stride) != len(conv_dim):
        raise ValueError(
            f"The checkpoint has {len(conv_dim)} conv layers but the {preset!r} preset has {len(conv_stride)} strides; "
            "strides cannot be read from shapes: pass conv_stride explicitly."
        )
    hidden, projection_in = tensor_shape(state_dict["feature_projection.projection.weight"])
    pos_shape = tensor_shape(state_dict[WEIGHT_NORM["encoder.pos_conv_embed.conv.weight_v"]])
    if len(pos_shape) != 3 or pos_shape[0] != hidden or hidden % pos_shape[1]:
        raise ValueError(
            f"The positional conv weight has shape {pos_shape}; expected ({hidden}, {hidden} / groups, kernel)."
        )
    layer_norm_on_every_conv = any(
        f"feature_extractor.conv_layers.{i}.layer_norm.weight" in state_dict for i in conv_ids[1:]
    )
    config = {
        "conv_dim": conv_dim,
        "conv_kernel": conv_kernel,
        "conv_stride": conv_stride,
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in state_dict,
        "feat_extract_norm": "layer" if layer_norm_on_every_conv else "group",
        "hidden_size": hidden,
        "num_hidden_layers": len(layer_ids),
        "intermediate_size": tensor_shape(state_dict["encoder.layers.0.feed_forward.intermediate_dense.weight"])[0],
        "num_conv_pos_embeddings": pos_shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_shape[1],
        "text_embed_dim": hidden,  # no projection head: F_s lives in the hidden space, as in the official encoder
    }
    if overrides.get("num_attention_heads") is None:
        overrides.pop("num_attention_heads", None)
    config.update(overrides)
    return Wav2SemConfig.from_preset(preset, **config)


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], preset: str = "paper", **config_overrides
) -> tuple[Wav2SemConfig, dict[str, torch.Tensor]]:
    """Official state dict -> (our config, our state dict).

    The returned state dict has exactly the keys of `Wav2SemModel(config).state_dict()`, the identity
    `target_shift` / `target_scale` buffers included, so it loads with `strict=True`. `config_overrides` go to
    [`infer_config`] (`num_attention_heads` defaults to the preset's, 12 for `paper`).

    Raises:
        ValueError: naming every missing, unexpected, duplicated or mis-shaped tensor.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"Expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}.")
    not_tensors = sorted(k for k, v in state_dict.items() if not torch.is_tensor(v))
    if not_tensors:
        raise ValueError(f"The state dict holds values that are not tensors under {not_tensors}.")

    renamed, unexpected, sources = {}, [], {}
    for key, value in state_dict.items():
        stripped = key
        while stripped.startswith(DDP_PREFIX):
            stripped = stripped[len(DDP_PREFIX) :]
        new_key = _to_ours(stripped)
        if new_key is None:
            unexpected.append(key)
            continue
        if new_key in renamed:
            raise ValueError(f"Two checkpoint keys map to {new_key!r}: {sources[new_key]!r} and {key!r}.")
        renamed[new_key], sources[new_key] = value, key
    if unexpected:
        raise ValueError(
            f"The checkpoint does not match the Wav2Sem architecture; unexpected: {sorted(unexpected)} (official keys "
            "start with FeatureExtractor. / FeatureProjection. / Encoder., optionally after module.)."
        )

    config = infer_config(renamed, preset=preset, **config_overrides)
    with torch.device("meta"):
        expected = {k: tensor_shape(v) for k, v in Wav2SemModel(config).state_dict().items() if k not in BUFFERS}
    details = state_dict_mismatches(expected, renamed, lambda k: f"{sources[k]} -> {k}")
    if details:
        raise ValueError(
            "The checkpoint does not match the Wav2Sem architecture inferred from its shapes "
            f"(conv_dim={tuple(config.conv_dim)}, hidden_size={config.hidden_size}, "
            f"num_hidden_layers={config.num_hidden_layers}); " + "; ".join(details)
        )
    renamed["target_shift"] = torch.zeros(config.text_embed_dim)
    renamed["target_scale"] = torch.ones(config.text_embed_dim)
    return config, renamed


def read_official_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict of an official checkpoint file (`{'state_dict': ...}` or a bare state dict), on the CPU."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds neither {{'state_dict': ...}} nor a state dict but a {type(checkpoint).__name__}.")
    return dict(checkpoint)


def load_official_checkpoint(path: str, preset: str = "paper", **config_overrides) -> Wav2SemModel:
    """A `Wav2SemModel` (in eval mode) holding the weights of an official checkpoint file.

    `config_overrides` as for [`convert_official_state_dict`], e.g. `num_attention_heads=12`, `target="mean"`.
    """
    config, state_dict = convert_official_state_dict(read_official_state_dict(path), preset=preset, **config_overrides)
    model = Wav2SemModel(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def save_converted(model: Wav2SemModel, output_dir: str) -> None:
    """Write the model (safetensors, config with `auto_map`, code) and its feature extractor to `output_dir`."""
    model.save_pretrained(output_dir)  # also writes the feature extractor (16 kHz, normalised, attention mask)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a checkpoint of the official Wav2Sem training script into a Hugging Face folder.",
        epilog="The architecture is read from the tensor shapes except the number of attention heads, the conv "
        "strides and pre/post-LN, which come from --preset (and --num_attention_heads).",
    )
    parser.add_argument("--checkpoint", required=True, help="the official checkpoint, e.g. model.pth.tar")
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument(
        "--target", choices=["cls", "mean"], default="cls",
        help="the teacher vector the checkpoint was trained on: cls (variant c, default) or mean (variant m)",
    )
    parser.add_argument(
        "--teacher_name_or_path", default="bert-base-uncased",
        help="the text encoder that produced the targets (recorded in the config; default bert-base-uncased)",
    )
    parser.add_argument(
        "--preset", default="paper", choices=sorted(WAV2SEM_PRESETS),
        help="where everything that shapes cannot tell comes from (default paper: the official architecture)",
    )
    parser.add_argument(
        "--num_attention_heads", type=int, default=None,
        help="attention heads (not inferable from shapes); default: the preset's (12 for paper, as the official code)",
    )
    args = parser.parse_args(argv)
    model = load_official_checkpoint(
        args.checkpoint,
        preset=args.preset,
        target=args.target,
        num_attention_heads=args.num_attention_heads,
        teacher_name_or_path=args.teacher_name_or_path,
    )
    save_converted(model, args.output_dir)
    config = model.config
    print(
        f"Converted {args.checkpoint} -> {args.output_dir}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"conv_dim={tuple(config.conv_dim)}, hidden_size={config.hidden_size}, layers={config.num_hidden_layers}, "
        f"heads={config.num_attention_heads}, target={config.target}"
    )


if __name__ == "__main__":
    main()
