"""Convert checkpoints published with CodeTalker (Xing et al., CVPR 2023; github.com/Doubiiu/CodeTalker) into a
[`CodeTalkerVQVAE`] folder (stage 1 alone) or a self-contained [`CodeTalkerForAnimation`] folder (both stages).

    python -m modeling_wav2sem.convert_codetalker_original_checkpoint --stage1 vocaset_stage1.pth.tar \
        --stage2 vocaset_stage2.pth.tar --dataset vocaset --output_dir codetalker-vocaset \
        [--audio_encoder facebook/wav2vec2-base-960h] [--train_subjects S1 S2 ...]
    python -m modeling_wav2sem.convert_codetalker_original_checkpoint --stage1 biwi_stage1.pth.tar --dataset biwi \
        --output_dir codetalker-vqvae-biwi     # stage 1 only

The published files (`vocaset_stage1.pth.tar`, `vocaset_stage2.pth.tar`, `biwi_stage1.pth.tar`,
`biwi_stage2.pth.tar`) are `{'state_dict': ...}` dicts written by `torch.save` (read with `weights_only=True`: no code
is unpickled; a plain state dict is accepted too). Their keys:

- stage 1 (`VQAutoEncoder`): `encoder.vertice_mapping.0.*`, `encoder.squasher.0.0.*` (the conv),
  `encoder.encoder_linear_embedding.net.*`, `encoder.encoder_pos_embedding.pe`, `encoder.encoder_transformer.net.{2k}
  .fn.norm.*` / `.fn.fn.to_qkv.weight` / `.fn.fn.to_out.*` (attention block k), `.net.{2k+1}.fn.norm.*` /
  `.fn.fn.l1.*` / `.fn.fn.l2.*` (MLP block k), BIWI `encoder.encoder_linear_embedding_post.net.*`; the decoder alike
  (`decoder.expander.0.0.*`, `decoder.decoder_linear_embedding.net.*`, BIWI `decoder.decoder_linear_embedding_pre.net.*`,
  `decoder.decoder_pos_embedding.pe`, `decoder.decoder_transformer.net.*`, `decoder.vertice_map_reverse.weight` and,
  VOCASET, `.bias`); `quantize.embedding.weight` `(256, code_dim)`.
- stage 2 (`CodeTalker`, with every `autoencoder.*` key removed by the original's `save_checkpoint(stage=2)`):
  `audio_encoder.*` (transformers' `Wav2Vec2Model`, old weight-norm names accepted), `audio_feature_map.*`,
  `vertice_map.*`, `PPE.pe`, `transformer_decoder.layers.{i}.*`, `feat_map.weight`, `learnable_style_emb.weight`.

Our module names follow the original's with its `nn.Sequential` wrappers flattened (`rename_stage1_key`); the stage-1
weights go under `autoencoder.` in the stage-2 model. The positional-encoding buffers (`*_pos_embedding.pe`, `PPE.pe`)
are computed by our model: they are checked to be what it computes (the VQ-VAE's row 0, the periodic encoding of the
preset's period) and left out. The VQ-VAE's and the predictor's sizes are read from the shapes (vertex count, hidden
and code widths, tokens per frame, codebook size, layers, feed-forward widths, speakers); the attention heads (8 in
the VQ-VAE, 4 in the predictor: not readable from shapes), the period and the audio pairing come from `--dataset`.
Every tensor must land on exactly one tensor of our model with the same shape and every tensor of our model must come
from the files: anything else raises a `ValueError` naming all missing, unexpected and mis-shaped keys.

The output loads with `AutoModel.from_pretrained` (after `import modeling_wav2sem`); the stage-2 folder also holds
`preprocessor_config.json` (the encoder folder's feature extractor, or wav2vec2-base-960h's settings).
"""

import argparse
import re
from collections.abc import Mapping

import torch
from transformers import AutoConfig, PreTrainedConfig

from .configuration_codetalker import CodeTalkerConfig, CodeTalkerVQVAEConfig
from .conversion_utils import rename_state_dict, state_dict_mismatches, tensor_shape
from .convert_faceformer_original_checkpoint import WEIGHT_NORM, feature_extractor_for
from .modeling_codetalker import CodeTalkerForAnimation, CodeTalkerVQVAE, published_positional_row
from .modeling_faceformer import periodic_positional_encoding

DATASETS = ("vocaset", "biwi")
PUBLISHED_VQ_HEADS = 8  # config/*/stage1.yaml num_attention_heads; not readable from shapes
PUBLISHED_PREDICTOR_HEADS = 4  # hard-coded in the original's temporal bias; not readable from shapes
STAGE1_BUFFERS = ("encoder.encoder_pos_embedding.pe", "decoder.decoder_pos_embedding.pe")
STAGE2_BUFFERS = ("PPE.pe", "biased_mask")

_STAGE1_RULES = [
    (re.compile(r"^encoder\.vertice_mapping\.0\."), "encoder.vertice_mapping."),
    (re.compile(r"^encoder\.squasher\.0\.0\."), "encoder.squasher.conv."),
    (re.compile(r"^decoder\.expander\.0\.0\."), "decoder.expander.conv."),
    (
        re.compile(r"^(encoder\.encoder|decoder\.decoder)_(linear_embedding(?:_post|_pre)?)\.net\."),
        r"\1_\2.",
    ),
]
_TRANSFORMER_KEY = re.compile(
    r"^(encoder\.encoder_transformer|decoder\.decoder_transformer)\.net\.(\d+)\.fn\.(norm|fn\.(to_qkv|to_out|l1|l2))\.(.+)$"
)


def rename_stage1_key(key: str) -> str:
    """Published stage-1 key -> our key (an unknown key is returned unchanged and reported as unexpected later)."""
    match = _TRANSFORMER_KEY.match(key)
    if match:
        prefix, index, part, inner, rest = match.groups()
        block, is_mlp = divmod(int(index), 2)
        if part == "norm":
            name = "mlp_norm" if is_mlp else "attention_norm"
        else:
            name = f"{'mlp' if is_mlp else 'attention'}.{inner}"
        return f"{prefix}.layers.{block}.{name}.{rest}"
    for pattern, replacement in _STAGE1_RULES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def _check_keys(kind: str, renamed: dict, sources: dict, expected: dict, context: str):
    def describe(key: str) -> str:
        return sources[key] if sources[key] == key else f"{sources[key]} -> {key}"

    details = state_dict_mismatches(expected, renamed, describe)
    if details:
        raise ValueError(f"The {kind} checkpoint does not match CodeTalker ({context}); " + "; ".join(details))


def _tensors_only(state_dict, name: str) -> None:
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"Expected a {name} state dict (a mapping of names to tensors), got {type(state_dict).__name__}.")
    not_tensors = sorted(k for k, v in state_dict.items() if not torch.is_tensor(v))
    if not_tensors:
        raise ValueError(f"The {name} state dict holds values that are not tensors under {not_tensors}.")


def _require(state_dict: Mapping, keys, kind: str):
    missing = [k for k in keys if k not in state_dict]
    if missing:
        raise ValueError(f"Cannot read the CodeTalker {kind} dimensions: the checkpoint lacks {missing}.")


def _count_layers(keys, pattern: str) -> int:
    indices = {int(m.group(1)) for m in (re.match(pattern, k) for k in keys) if m}
    return max(indices) + 1 if indices else 0


def convert_stage1_state_dict(
    state_dict: Mapping[str, torch.Tensor], dataset: str
) -> tuple[CodeTalkerVQVAEConfig, dict[str, torch.Tensor]]:
    """Published `VQAutoEncoder` state dict -> (our `CodeTalkerVQVAEConfig`, our state dict, loadable strictly)."""
    _tensors_only(state_dict, "stage-1")
    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} (case-insensitive), got {dataset!r}.")
    renamed, buffers, sources = rename_state_dict(state_dict, rename_stage1_key, STAGE1_BUFFERS)

    _require(renamed, ("encoder.vertice_mapping.weight", "quantize.embedding.weight",
                       "encoder.encoder_transformer.layers.0.mlp.l1.weight"), "stage-1")
    hidden, vertice_dim = tensor_shape(renamed["encoder.vertice_mapping.weight"])
    num_embeddings, code_dim = tensor_shape(renamed["quantize.embedding.weight"])
    projection = "encoder.encoder_linear_embedding_post.weight" in renamed
    latent_dim = tensor_shape(renamed["encoder.encoder_linear_embedding_post.weight"])[0] if projection else hidden
    if latent_dim % code_dim:
        raise ValueError(f"The latent width {latent_dim} is not a multiple of the code width {code_dim}.")
    config = CodeTalkerVQVAEConfig.from_preset(
        dataset,
        vertice_dim=vertice_dim,
        hidden_size=hidden,
        num_hidden_layers=_count_layers(renamed, r"^encoder\.encoder_transformer\.layers\.(\d+)\."),
        num_attention_heads=PUBLISHED_VQ_HEADS,
        intermediate_size=tensor_shape(renamed["encoder.encoder_transformer.layers.0.mlp.l1.weight"])[0],
        num_embeddings=num_embeddings,
        code_dim=code_dim,
        tokens_per_frame=latent_dim // code_dim,
        latent_projection=projection,
        output_bias="decoder.vertice_map_reverse.bias" in renamed,
    )
    row = published_positional_row(hidden)
    for key, pe in buffers.items():
        if pe.dim() != 3 or pe.shape[1] != 1 or pe.shape[2] != hidden or not torch.allclose(pe[0, 0].float(), row):
            raise ValueError(f"{key} is not the sinusoidal table of width {hidden} (shape {tensor_shape(pe)}).")
    with torch.device("meta"):
        expected = {k: tensor_shape(v) for k, v in CodeTalkerVQVAE(config).state_dict().items()}
    _check_keys("stage-1", renamed, sources, expected,
                f"{dataset}, vertice_dim={vertice_dim}, hidden_size={hidden}, {config.tokens_per_frame} x {code_dim}")
    return config, renamed


def convert_stage2_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    stage1_state_dict: Mapping[str, torch.Tensor],
    audio_config: PreTrainedConfig,
    dataset: str,
    train_subjects: list[str] | None = None,
) -> tuple[CodeTalkerConfig, dict[str, torch.Tensor]]:
    """Published stage-2 (`CodeTalker`, without `autoencoder.*`) and stage-1 state dicts -> (our `CodeTalkerConfig`,
    our state dict with exactly the keys of `CodeTalkerForAnimation(config)`)."""
    _tensors_only(state_dict, "stage-2")
    vqvae_config, stage1 = convert_stage1_state_dict(stage1_state_dict, dataset)
    dataset = dataset.lower()
    if audio_config.model_type != "wav2vec2":
        raise ValueError(
            f"The published CodeTalker's audio encoder is a wav2vec2 model; --audio_encoder describes a "
            f"{audio_config.model_type!r} model."
        )
    renamed, buffers, sources = rename_state_dict(state_dict, lambda key: WEIGHT_NORM.get(key, key), STAGE2_BUFFERS)
    if any(k.startswith("autoencoder.") for k in renamed):
        raise ValueError(
            "The stage-2 checkpoint holds autoencoder.* keys (the published files have them removed): give the "
            "stage-1 weights as the stage-1 file."
        )
    _require(renamed, ("audio_feature_map.weight", "learnable_style_emb.weight",
                       "transformer_decoder.layers.0.linear1.weight"), "stage-2")
    feature_dim, audio_hidden = tensor_shape(renamed["audio_feature_map.weight"])
    num_subjects = tensor_shape(renamed["learnable_style_emb.weight"])[0]
    if audio_hidden != audio_config.hidden_size:
        raise ValueError(
            f"audio_feature_map.weight takes {audio_hidden} features but the audio encoder's config has hidden_size "
            f"{audio_config.hidden_size}: does --audio_encoder describe the checkpoint's encoder?"
        )
    if train_subjects is not None and len(train_subjects) != num_subjects:
        raise ValueError(
            f"learnable_style_emb.weight has {num_subjects} rows (training speakers) but {len(train_subjects)} "
            f"train_subjects were given."
        )
    config = CodeTalkerConfig.from_preset(
        dataset,
        audio_config=audio_config,
        vqvae_config=vqvae_config,
        vertice_dim=vqvae_config.vertice_dim,
        feature_dim=feature_dim,
        num_hidden_layers=_count_layers(renamed, r"^transformer_decoder\.layers\.(\d+)\."),
        num_attention_heads=PUBLISHED_PREDICTOR_HEADS,
        intermediate_size=tensor_shape(renamed["transformer_decoder.layers.0.linear1.weight"])[0],
        train_subjects=train_subjects,
    )
    if config.num_subjects != num_subjects:
        raise ValueError(
            f"learnable_style_emb.weight has {num_subjects} rows (training speakers) but the {dataset!r} preset has "
            f"{config.num_subjects}: pass --train_subjects in the order of training."
        )
    if "PPE.pe" in buffers:
        pe = buffers["PPE.pe"]
        table = periodic_positional_encoding(config.period, feature_dim)
        if pe.dim() != 3 or pe.shape[2] != feature_dim or not torch.allclose(
            pe[0].float(), table[torch.arange(pe.shape[1]) % config.period], atol=1e-5, rtol=0
        ):
            raise ValueError(
                f"PPE.pe is not the periodic positional encoding with period {config.period} (the {dataset!r} "
                "preset's): the checkpoint was trained with another period or dataset."
            )
    for key, value in stage1.items():
        renamed["autoencoder." + key] = value
        sources["autoencoder." + key] = "stage 1: " + key
    with torch.device("meta"):
        expected = {k: tensor_shape(v) for k, v in CodeTalkerForAnimation(config).state_dict().items()}
    _check_keys("stage-2", renamed, sources, expected,
                f"{dataset}, feature_dim={feature_dim}, {config.num_hidden_layers} layers, {num_subjects} speakers")
    return config, renamed


def read_published_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a published file: `{'state_dict': ...}` (as published) or a plain state dict, on the CPU."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict.")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in checkpoint.items()}


def load_published_vqvae(path: str, dataset: str) -> CodeTalkerVQVAE:
    config, state_dict = convert_stage1_state_dict(read_published_state_dict(path), dataset)
    model = CodeTalkerVQVAE(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def load_published_checkpoint(
    stage2: str, stage1: str, audio_config: PreTrainedConfig, dataset: str, train_subjects: list[str] | None = None
) -> CodeTalkerForAnimation:
    """A `CodeTalkerForAnimation` (in eval mode) holding the weights of the published stage-2 and stage-1 files."""
    config, state_dict = convert_stage2_state_dict(
        read_published_state_dict(stage2), read_published_state_dict(stage1), audio_config, dataset, train_subjects
    )
    model = CodeTalkerForAnimation(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert checkpoints published with CodeTalker (*_stage1.pth.tar, *_stage2.pth.tar) to a Hugging "
        "Face folder: stage 1 alone (CodeTalkerVQVAE) or both stages (CodeTalkerForAnimation)."
    )
    parser.add_argument("--stage1", required=True, help="the published stage-1 file, e.g. vocaset_stage1.pth.tar")
    parser.add_argument("--stage2", help="the published stage-2 file, e.g. vocaset_stage2.pth.tar")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=DATASETS, help="vocaset or biwi")
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument(
        "--audio_encoder", default="facebook/wav2vec2-base-960h",
        help="with --stage2: folder or Hub id whose config describes the encoder (weights come from the checkpoint)",
    )
    parser.add_argument("--train_subjects", nargs="+", default=None, help="speakers in one-hot order (default: split)")
    args = parser.parse_args(argv)

    if args.stage2 is None:
        model = load_published_vqvae(args.stage1, args.dataset)
    else:
        audio_config = AutoConfig.from_pretrained(args.audio_encoder)
        model = load_published_checkpoint(args.stage2, args.stage1, audio_config, args.dataset, args.train_subjects)
        model.audio_feature_extractor = feature_extractor_for(args.audio_encoder)
    model.save_pretrained(args.output_dir)
    print(
        f"Converted {args.stage1}{' + ' + args.stage2 if args.stage2 else ''} -> {args.output_dir}: "
        f"{type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters, dataset={args.dataset}"
    )


if __name__ == "__main__":
    main()
