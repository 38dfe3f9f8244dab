# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Convert the two-stage checkpoints published with LG-LDM (Song et al., IEEE TVCG 2024;
github.com/wangxuanx/Face-Diffusion-Model) into a self-contained [`LGLDMForAnimation`] folder.

    python -m modeling_wav2sem.convert_lgldm_original_checkpoint --stage1 vocaset/vocaset_stage1.mpt \
        --stage2 vocaset/vocaset_stage2.mpt --dataset vocaset --output_dir lgldm-vocaset \
        [--audio_encoder facebook/hubert-large-ls960-ft] [--train_subjects S1 S2 ...]

The published files are `{'epoch', 'model': state_dict, 'opt'}` dicts written by `torch.save` (`model-<epoch>.mpt`;
read with `weights_only=True`: no code is unpickled; `{'state_dict': ...}`, as the VOCASET / BIWI stage-2 scripts
load their CodeTalker-format stage 1, and plain state dicts are accepted too). Their keys:

- stage 1: CodeTalker's VQ-VAE (`models/vq_vae.py`, `vq_vae_vocaset.py`: the same names), converted by
  `convert_codetalker_original_checkpoint.convert_stage1_state_dict`;
- stage 2 (`GaussianDiffusion`): `denoise_fn.*`, the FDM: `audio_encoder.*` (transformers' `HubertModel` / `Wav2Vec2Model`
  names), `audio_extract.{0,2}.*`, `time_embedd.0.*`, `style_embedd.*` (VOCASET) or `style_embedd.0.*` (BIWI, with a
  Mish), `latent_encoder.0.*` (VOCASET, with a Mish) or `latent_encoder.*` (BIWI), `transformer_decoder.layers.{i}.*`,
  `latent_decoder.*`, `PE.pe`; plus the diffusion's schedule buffers (`betas`, `alphas_cumprod`, ...).

Our module names drop the `denoise_fn.` prefix and the `nn.Sequential` index of `time_embedd`, `style_embedd` and
`latent_encoder` (whether the latter two had a Mish is read from the keys: `style_activation`, `latent_activation`).
Computed by our model and so checked and left out: `PE.pe` (must be the periodic encoding of the preset's period) and
the schedule (must be the cosine schedule; its length is `num_train_timesteps`). Sizes come from the shapes (d, k
audio frames per vertex frame from `audio_extract.0`'s input over the encoder width, layers, feed-forward width,
speakers, steps, latent width); the heads (8 VOCASET, 4 BIWI: not readable from shapes) and the period come from
`--dataset`. BIWI's published stage 2 is the `struct='Enc'` denoiser (`transformer_encoder.*`), which does not hold
together (see `modeling_lgldm.py`) and is refused with that reason. Every tensor must land on exactly one tensor of
our model with the same shape and every tensor of our model must come from the files, or a `ValueError` names all
missing, unexpected and mis-shaped keys.
"""

import argparse
import re
from collections.abc import Mapping

import torch
from transformers import AutoConfig, PreTrainedConfig

from .configuration_lgldm import LGLDMConfig
from .conversion_utils import rename_state_dict, state_dict_mismatches, tensor_shape
from .convert_codetalker_original_checkpoint import DATASETS, _count_layers, _require, _tensors_only, convert_stage1_state_dict
from .convert_faceformer_original_checkpoint import WEIGHT_NORM, feature_extractor_for
from .modeling_animation_diffusion import cosine_alphas_cumprod
from .modeling_faceformer import periodic_positional_encoding
from .modeling_lgldm import LGLDMForAnimation

PUBLISHED_HEADS = {"vocaset": 8, "biwi": 4}  # FDM(n_head=...) of fdm_vocaset.py / fdm.py; not readable from shapes
PUBLISHED_AUDIO_ENCODERS = {"vocaset": "facebook/hubert-large-ls960-ft", "biwi": "facebook/wav2vec2-base-960h"}
SCHEDULE_BUFFERS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
)
_SEQUENTIAL = re.compile(r"^(time_embedd|style_embedd|latent_encoder)\.0\.")


def rename_stage2_key(key: str) -> str:
    """Published stage-2 key (`denoise_fn.*`) -> our key."""
    key = key.removeprefix("denoise_fn.")
    key = WEIGHT_NORM.get(key, key)
    return _SEQUENTIAL.sub(r"\1.", key)


def convert_lgldm_state_dicts(
    state_dict: Mapping[str, torch.Tensor],
    stage1_state_dict: Mapping[str, torch.Tensor],
    audio_config: PreTrainedConfig,
    dataset: str,
    train_subjects: list[str] | None = None,
) -> tuple[LGLDMConfig, dict[str, torch.Tensor]]:
    """Published stage-2 (`GaussianDiffusion`) and stage-1 state dicts -> (our `LGLDMConfig`, our state dict with
    exactly the keys of `LGLDMForAnimation(config)`)."""
    _tensors_only(state_dict, "stage-2")
    vqvae_config, stage1 = convert_stage1_state_dict(stage1_state_dict, dataset)
    dataset = dataset.lower()
    schedule = {k: v for k, v in state_dict.items() if k in SCHEDULE_BUFFERS}
    outside = sorted(k for k in state_dict if k not in schedule and not k.startswith("denoise_fn."))
    if outside:
        raise ValueError(f"Unexpected stage-2 keys outside denoise_fn.* and the schedule buffers: {outside}.")
    denoiser = {k: v for k, v in state_dict.items() if k.startswith("denoise_fn.")}
    if any(k.startswith("denoise_fn.transformer_encoder.") for k in denoiser):
        raise ValueError(
            "This stage-2 checkpoint is the published BIWI denoiser's struct='Enc' variant (transformer_encoder.*), "
            "which attends over length-1 sequences and returns one position: not supported. LGLDMForAnimation is the "
            "decoder variant (transformer_decoder.*) all published denoisers share."
        )
    renamed, buffers, sources = rename_state_dict(denoiser, rename_stage2_key, ("denoise_fn.PE.pe",))
    _require(renamed, ("audio_extract.0.weight", "time_embedd.weight", "style_embedd.weight", "latent_encoder.weight",
                       "transformer_decoder.layers.0.linear1.weight"), "LG-LDM stage-2")
    feature_dim, paired_width = tensor_shape(renamed["audio_extract.0.weight"])
    if paired_width % audio_config.hidden_size:
        raise ValueError(
            f"audio_extract.0.weight takes {paired_width} features, not a multiple of the audio encoder's hidden_size "
            f"{audio_config.hidden_size}: does --audio_encoder describe the checkpoint's encoder?"
        )
    num_subjects = tensor_shape(renamed["style_embedd.weight"])[1]
    if train_subjects is not None and len(train_subjects) != num_subjects:
        raise ValueError(
            f"style_embedd.weight takes {num_subjects} speakers but {len(train_subjects)} train_subjects were given."
        )
    num_train_timesteps = tensor_shape(renamed["time_embedd.weight"])[1]
    config = LGLDMConfig.from_preset(
        dataset,
        audio_config=audio_config,
        vqvae_config=vqvae_config,
        vertice_dim=vqvae_config.vertice_dim,
        feature_dim=feature_dim,
        num_hidden_layers=_count_layers(renamed, r"^transformer_decoder\.layers\.(\d+)\."),
        num_attention_heads=PUBLISHED_HEADS[dataset],
        intermediate_size=tensor_shape(renamed["transformer_decoder.layers.0.linear1.weight"])[0],
        audio_frames_per_vertex_frame=paired_width // audio_config.hidden_size,
        style_activation=sources["style_embedd.weight"].startswith("denoise_fn.style_embedd.0."),
        latent_activation=sources["latent_encoder.weight"].startswith("denoise_fn.latent_encoder.0."),
        num_train_timesteps=num_train_timesteps,
        train_subjects=train_subjects,
    )
    if config.num_subjects != num_subjects:
        raise ValueError(
            f"style_embedd.weight takes {num_subjects} speakers but the {dataset!r} preset has {config.num_subjects}: "
            "pass --train_subjects in the order of training."
        )
    if "denoise_fn.PE.pe" in buffers:
        pe = buffers["denoise_fn.PE.pe"]
        table = periodic_positional_encoding(config.period, feature_dim)
        if pe.dim() != 3 or pe.shape[2] != feature_dim or not torch.allclose(
            pe[0].float(), table[torch.arange(pe.shape[1]) % config.period], atol=1e-5, rtol=0
        ):
            raise ValueError(
                f"PE.pe is not the periodic positional encoding with period {config.period} (the {dataset!r} preset's): "
                "the checkpoint was trained with another positional encoding, which LGLDMForAnimation does not have."
            )
    if "alphas_cumprod" in schedule:
        found = schedule["alphas_cumprod"].float()
        expected = cosine_alphas_cumprod(num_train_timesteps)
        # The published cosine schedule clips betas at 0.9999 (diffusers': 0.999): only the last step differs.
        if found.shape != expected.shape or not torch.allclose(found[:-1], expected[:-1], atol=1e-5, rtol=1e-4):
            raise ValueError("alphas_cumprod is not the cosine schedule of the time embedding's length.")
    for key, value in stage1.items():
        renamed["autoencoder." + key] = value
        sources["autoencoder." + key] = "stage 1: " + key
    with torch.device("meta"):
        expected_shapes = {k: tensor_shape(v) for k, v in LGLDMForAnimation(config).state_dict().items()}
    details = state_dict_mismatches(
        expected_shapes, renamed, lambda key: f"{sources[key]} -> {key}"
    )
    if details:
        raise ValueError(
            f"The stage-2 checkpoint does not match LG-LDM ({dataset}, feature_dim={feature_dim}, "
            f"{config.num_hidden_layers} layers, {num_subjects} speakers); " + "; ".join(details)
        )
    return config, renamed


def read_published_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a published file: `{'model': ...}` (`.mpt`), `{'state_dict': ...}` or a plain state dict."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a state dict.")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in checkpoint.items()}


def load_published_checkpoint(
    stage2: str, stage1: str, audio_config: PreTrainedConfig, dataset: str, train_subjects: list[str] | None = None
) -> LGLDMForAnimation:
    """An `LGLDMForAnimation` (in eval mode) holding the weights of the published stage-2 and stage-1 files."""
    config, state_dict = convert_lgldm_state_dicts(
        read_published_file(stage2), read_published_file(stage1), audio_config, dataset, train_subjects
    )
    model = LGLDMForAnimation(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert the two-stage checkpoints published with LG-LDM (*_stage1.mpt, *_stage2.mpt) to a "
        "Hugging Face LGLDMForAnimation folder."
    )
    parser.add_argument("--stage1", required=True, help="the stage-1 (VQ-VAE) file, e.g. vocaset_stage1.mpt")
    parser.add_argument("--stage2", required=True, help="the stage-2 (diffusion) file, e.g. vocaset_stage2.mpt")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=DATASETS, help="vocaset or biwi")
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument(
        "--audio_encoder", default=None,
        help="folder or Hub id whose config describes the encoder (weights come from the checkpoint); default: "
        "hubert-large-ls960-ft (VOCASET), wav2vec2-base-960h (BIWI), as published",
    )
    parser.add_argument("--train_subjects", nargs="+", default=None, help="speakers in one-hot order (default: split)")
    args = parser.parse_args(argv)

    audio_encoder = args.audio_encoder or PUBLISHED_AUDIO_ENCODERS[args.dataset]
    audio_config = AutoConfig.from_pretrained(audio_encoder)
    model = load_published_checkpoint(args.stage2, args.stage1, audio_config, args.dataset, args.train_subjects)
    model.audio_feature_extractor = feature_extractor_for(audio_encoder)
    model.save_pretrained(args.output_dir)
    print(
        f"Converted {args.stage1} + {args.stage2} -> {args.output_dir}: {type(model).__name__}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, dataset={args.dataset}"
    )


if __name__ == "__main__":
    main()
