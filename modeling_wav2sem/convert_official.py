"""Convert a checkpoint of the official Wav2Sem training script into this package's format.

    python -m modeling_wav2sem.convert_official --checkpoint model.pth.tar --output_dir wav2sem-c [--target cls]

The official checkpoint is a torch pickle `{'state_dict': {...}}` (or a bare state dict) with keys such as
`FeatureExtractor.conv_layers.0.conv.weight` and `Encoder.pos_conv_embed.conv.weight_g`, possibly prefixed by
`module.` (DistributedDataParallel). It is read with `torch.load(..., weights_only=True)`. The architecture (conv
channels and kernels, hidden size, layers, FFN width, positional conv) is read from the shapes; the number of
attention heads cannot be, so it comes from `--num_attention_heads` (12 in the official code).
"""

import argparse
import re

import torch
from transformers import Wav2Vec2FeatureExtractor

from .configuration_wav2sem import Wav2SemConfig
from .modeling_wav2sem import Wav2SemModel

PREFIXES = {"FeatureExtractor.": "feature_extractor.", "FeatureProjection.": "feature_projection.", "Encoder.": "encoder."}
WEIGHT_NORM = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
BUFFERS = ("target_shift", "target_scale")  # ours: the folded-in target statistics, identity for official weights


def rename_official_key(key: str) -> str:
    """Official key -> our key (`module.` prefixes dropped)."""
    while key.startswith("module."):
        key = key[len("module.") :]
    for old, new in PREFIXES.items():
        if key.startswith(old):
            key = new + key[len(old) :]
            break
    else:
        raise ValueError(f"Unexpected key {key!r} in the official checkpoint.")
    return WEIGHT_NORM.get(key, key)


def infer_config(state_dict: dict, **overrides) -> Wav2SemConfig:
    """The architecture of an (already renamed) state dict, read from its shapes."""
    conv_keys = sorted(
        (int(m.group(1)), k) for k in state_dict if (m := re.match(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight$", k))
    )
    if not conv_keys:
        raise ValueError("No conv feature encoder weights (FeatureExtractor.conv_layers.N.conv.weight) in the checkpoint.")
    conv_dim = tuple(state_dict[k].shape[0] for _, k in conv_keys)
    conv_kernel = tuple(state_dict[k].shape[2] for _, k in conv_keys)
    hidden = state_dict["feature_projection.projection.weight"].shape[0]
    layers = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    pos_weight = state_dict[WEIGHT_NORM["encoder.pos_conv_embed.conv.weight_v"]]
    has_layer_norms = any(f"feature_extractor.conv_layers.{i}.layer_norm.weight" in state_dict for i in range(1, len(conv_dim)))
    config = {
        "conv_dim": conv_dim,
        "conv_kernel": conv_kernel,
        "conv_bias": "feature_extractor.conv_layers.0.conv.bias" in state_dict,
        "feat_extract_norm": "layer" if has_layer_norms else "group",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": state_dict["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0],
        "num_conv_pos_embeddings": pos_weight.shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_weight.shape[1],
        "num_attention_heads": 12,
    }
    config.update(overrides)
    return Wav2SemConfig.from_preset("paper", **config)


def convert_official_state_dict(state_dict: dict, **config_overrides) -> tuple[Wav2SemConfig, dict]:
    """Official state dict -> (our config, our state dict). Raises `ValueError` naming every missing, unexpected or
    mis-shaped tensor; nothing is dropped silently."""
    renamed = {}
    for key, value in state_dict.items():
        new_key = rename_official_key(key)
        if new_key in renamed:
            raise ValueError(f"Two checkpoint keys map to {new_key!r}.")
        renamed[new_key] = value
    config = infer_config(renamed, **config_overrides)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in Wav2SemModel(config).state_dict().items() if k not in BUFFERS}
    missing = sorted(set(expected) - set(renamed))
    unexpected = sorted(set(renamed) - set(expected))
    wrong = sorted(k for k in set(expected) & set(renamed) if tuple(renamed[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        details = [f"missing: {missing}" if missing else "", f"unexpected: {unexpected}" if unexpected else ""]
        details.append(
            "wrong shapes: " + ", ".join(f"{k} {tuple(renamed[k].shape)} != {tuple(expected[k])}" for k in wrong) if wrong else ""
        )
        raise ValueError("The checkpoint does not match the Wav2Sem architecture; " + "; ".join(d for d in details if d))
    return config, renamed


def load_official_checkpoint(path: str, **config_overrides) -> Wav2SemModel:
    """A `Wav2SemModel` holding the weights of an official checkpoint file."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path} holds neither {{'state_dict': ...}} nor a state dict.")
    config, renamed = convert_official_state_dict(state_dict, **config_overrides)
    model = Wav2SemModel(config)
    incompatible = model.load_state_dict(renamed, strict=False)
    if incompatible.unexpected_keys or set(incompatible.missing_keys) - set(BUFFERS):
        raise ValueError(f"Loading failed: {incompatible}")
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the official model.pth.tar")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--target", choices=["cls", "mean"], default="cls", help="cls: variant c; mean: variant m")
    parser.add_argument("--num_attention_heads", type=int, default=12)
    parser.add_argument("--teacher_name_or_path", default="bert-base-uncased")
    args = parser.parse_args(argv)
    model = load_official_checkpoint(
        args.checkpoint, target=args.target, num_attention_heads=args.num_attention_heads,
        teacher_name_or_path=args.teacher_name_or_path,
    )
    model.save_pretrained(args.output_dir)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(args.output_dir)
    print(f"Converted {args.checkpoint} ({sum(p.numel() for p in model.parameters()):,} parameters) -> {args.output_dir}")


if __name__ == "__main__":
    main()
