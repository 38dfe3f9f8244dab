"""Convert a checkpoint published with FaceDiffuser (Stan et al., MIG 2023; github.com/uuembodiedsocialai/FaceDiffuser)
into a [`FaceDiffuserForAnimation`] folder.

    python -m modeling_wav2sem.convert_facediffuser_original_checkpoint --checkpoint pretrained_vocaset.pth \
        --dataset vocaset --output_dir facediffuser-vocaset [--audio_encoder facebook/hubert-base-ls960]

The published `pretrained_BIWI.pth` / `pretrained_vocaset.pth` are the plain `state_dict()` of the original `FaceDiff`
module (read here with `torch.load(..., weights_only=True)`: no code is unpickled). Its keys:

- `audio_encoder.*`: a vendored copy of transformers' `HubertModel` (hubert-base-ls960), with the positional conv's
  weight norm under the old `weight_g` / `weight_v` names (the newer `parametrizations` names are accepted too);
- `cond_projection.*` Linear(2 x 768, d); `input_projection.0.*` Linear(V*3, 2d); `input_projection.1.*`
  Conv1d(1, 1, 9); `time_mlp.0.*` Linear(N, d); `norm_cond.*` LayerNorm(3d); `gru.{weight,bias}_{ih,hh}_l{0,1}`;
  `final_layer.*` Linear(d, V*3); `obj_vector.weight` Linear(S, d, bias=False).

Our module names follow the original, so the mapping is the identity but for the weight-norm names. Read from the
shapes: V*3 (`final_layer.weight`), d (`cond_projection.weight`), the GRU width (`gru.weight_hh_l0`), the diffusion
steps N (`time_mlp.0.weight`: 1000 VOCASET, 500 BIWI as released) and the number of speakers (`obj_vector.weight`).
From the dataset preset (`--dataset`): frame rate, audio pairing and speakers' names (`--train_subjects` to
override). From `--audio_encoder`'s config: the encoder's architecture (its weights are in the checkpoint). Every
tensor of the checkpoint must land on exactly one tensor of the model with the same shape and every tensor of the
model must come from the checkpoint; anything else raises a `ValueError` naming all missing, unexpected and
mis-shaped keys.

The output folder holds `config.json` (with `auto_map`), `model.safetensors`, the model code and
`preprocessor_config.json` (the encoder folder's feature extractor, else wav2vec2-base-960h's normalising settings;
the published code normalises with hubert-xlarge-ls960-ft's processor, which has the same settings).
"""

import argparse
from collections.abc import Mapping

import torch
from transformers import AutoConfig, PreTrainedConfig

from .configuration_facediffuser import FaceDiffuserConfig
from .conversion_utils import rename_state_dict, state_dict_mismatches, tensor_shape
from .convert_faceformer_original_checkpoint import WEIGHT_NORM, feature_extractor_for, read_published_state_dict
from .modeling_facediffuser import FaceDiffuserForAnimation

DATASETS = ("vocaset", "biwi")
# The tensors whose shapes give the dimensions, and which shape axis gives what.
_SHAPE_KEYS = ("cond_projection.weight", "time_mlp.0.weight", "gru.weight_hh_l0", "final_layer.weight",
               "obj_vector.weight")


def infer_dimensions(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """`vertice_dim`, `feature_dim`, `gru_hidden_size`, `num_train_timesteps`, `num_subjects`, `audio_input_size`
    (2 x the encoder width), `gru_num_layers`, read from the shapes; a `ValueError` when a tensor is missing."""
    missing = [key for key in _SHAPE_KEYS if key not in state_dict]
    if missing:
        raise ValueError("Cannot read the FaceDiffuser dimensions: the checkpoint lacks " + ", ".join(map(repr, missing)))
    shapes = {key: tensor_shape(state_dict[key]) for key in _SHAPE_KEYS}
    feature_dim, audio_input_size = shapes["cond_projection.weight"]
    return {
        "vertice_dim": shapes["final_layer.weight"][0],
        "feature_dim": feature_dim,
        "gru_hidden_size": shapes["gru.weight_hh_l0"][1],
        "num_train_timesteps": shapes["time_mlp.0.weight"][1],
        "num_subjects": shapes["obj_vector.weight"][1],
        "audio_input_size": audio_input_size,
        "gru_num_layers": len([k for k in state_dict if k.startswith("gru.weight_ih_l")]),
    }


def convert_published_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    audio_config: PreTrainedConfig,
    dataset: str,
    train_subjects: list[str] | None = None,
) -> tuple[FaceDiffuserConfig, dict[str, torch.Tensor]]:
    """Published `FaceDiff` state dict -> (our config, our state dict, loadable with `strict=True`).

    Raises:
        ValueError: naming every missing, unexpected, duplicated or mis-shaped tensor, or a dataset, encoder or
            speaker list that does not fit the checkpoint.
    """
    if not isinstance(state_dict, Mapping) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise ValueError("Expected a state dict (a mapping of names to tensors).")
    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} (case-insensitive), got {dataset!r}.")
    renamed, _, sources = rename_state_dict(state_dict, lambda key: WEIGHT_NORM.get(key, key))
    dims = infer_dimensions(renamed)
    k = FaceDiffuserConfig.presets[dataset]["audio_frames_per_vertex_frame"]
    if dims["audio_input_size"] != k * audio_config.hidden_size:
        raise ValueError(
            f"cond_projection.weight takes {dims['audio_input_size']} features, not {k} x the audio encoder's "
            f"hidden_size {audio_config.hidden_size}: does --audio_encoder describe the checkpoint's encoder?"
        )
    if train_subjects is not None and len(train_subjects) != dims["num_subjects"]:
        raise ValueError(f"obj_vector.weight has {dims['num_subjects']} columns (training speakers) but "
                         f"{len(train_subjects)} train_subjects were given.")
    config = FaceDiffuserConfig.from_preset(
        dataset, audio_config=audio_config, train_subjects=train_subjects,
        **{key: dims[key] for key in ("vertice_dim", "feature_dim", "gru_hidden_size", "num_train_timesteps",
                                       "gru_num_layers")},
    )
    if config.num_subjects != dims["num_subjects"]:
        raise ValueError(
            f"obj_vector.weight has {dims['num_subjects']} columns (training speakers) but the {dataset!r} preset has "
            f"{config.num_subjects}: pass --train_subjects in the order of training."
        )
    with torch.device("meta"):
        expected = {key: tensor_shape(v) for key, v in FaceDiffuserForAnimation(config).state_dict().items()}
    details = state_dict_mismatches(expected, renamed, lambda key: key if sources[key] == key else f"{sources[key]} -> {key}")
    if details:
        raise ValueError(
            f"The checkpoint does not match FaceDiffuser ({dataset}, vertice_dim={config.vertice_dim}, feature_dim="
            f"{config.feature_dim}, {config.num_train_timesteps} steps, {config.num_subjects} speakers, encoder "
            f"hidden_size={config.audio_hidden_size}); " + "; ".join(details)
        )
    return config, renamed


def load_published_checkpoint(
    path: str, audio_config: PreTrainedConfig, dataset: str, train_subjects: list[str] | None = None
) -> FaceDiffuserForAnimation:
    """A `FaceDiffuserForAnimation` (in eval mode) holding the weights of a published checkpoint file."""
    config, state_dict = convert_published_state_dict(
        read_published_state_dict(path), audio_config, dataset, train_subjects
    )
    model = FaceDiffuserForAnimation(config)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a checkpoint published with FaceDiffuser (pretrained_vocaset.pth, pretrained_BIWI.pth) "
        "to a Hugging Face folder.",
    )
    parser.add_argument("--checkpoint", required=True, help="the published state dict")
    parser.add_argument("--dataset", required=True, type=str.lower, choices=DATASETS, help="vocaset or biwi")
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument(
        "--audio_encoder", default="facebook/hubert-base-ls960",
        help="local folder or Hub id whose config describes the encoder (default facebook/hubert-base-ls960, as "
        "published); only its config (and feature extractor, if any) is read",
    )
    parser.add_argument("--train_subjects", nargs="+", default=None,
                        help="the training speakers in the order of the one-hot (default: the dataset's)")
    args = parser.parse_args(argv)

    audio_config = AutoConfig.from_pretrained(args.audio_encoder)
    model = load_published_checkpoint(args.checkpoint, audio_config, args.dataset, args.train_subjects)
    model.audio_feature_extractor = feature_extractor_for(args.audio_encoder)
    model.save_pretrained(args.output_dir)
    config = model.config
    print(
        f"Converted {args.checkpoint} -> {args.output_dir}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"dataset={config.dataset}, vertice_dim={config.vertice_dim}, feature_dim={config.feature_dim}, "
        f"{config.num_train_timesteps} diffusion steps, {config.num_subjects} speakers"
    )


if __name__ == "__main__":
    main()
