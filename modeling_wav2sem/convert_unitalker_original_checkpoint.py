"""Convert a checkpoint published with UniTalker (Fan et al., ECCV 2024; github.com/X-niper/UniTalker) into a
[`UniTalkerForAnimation`] folder, keeping the datasets you choose.

    python -m modeling_wav2sem.convert_unitalker_original_checkpoint --checkpoint UniTalker-B-D0-D7.pt --size base \
        --keep D0=biwi D1=vocaset --pca biwi=unitalker_data_release_V1/D0_BIWI/pca.npz \
        vocaset=unitalker_data_release_V1/D1_vocaset/pca.npz --output_dir unitalker-b-biwi-vocaset

`UniTalker-B-D0-D7.pt` (WavLM-base-plus encoder) and `UniTalker-L-D0-D7.pt` (wav2vec2-large-xlsr-53) are flat state
dicts (`torch.save(state_dict)`, read here with `weights_only=True`) without the PCA buffers:

- `audio_encoder.*`: transformers' `WavLMModel` / `Wav2Vec2Model` names, taken as they are;
- `decoder.learnable_style_emb.weight` `(935, 64)`: the identities of D0-D7 in dataset order (`PUBLISHED_DATASETS`),
  then the pivot (row 934); only the kept datasets' rows and the pivot are taken, in the order of `--keep`;
- `decoder.audio_feature_map.*`, `decoder.tcn.first_net.conv_layers.{i}.conv.*` / `.norm.*` and
  `conv_layers.0.residual_layer.0.*` -> `decoder.audio_feature_map.*`, `decoder.layers.{i}.conv.*` / `.norm.*` /
  `decoder.layers.0.residual.*`;
- `out_head_dict.<annotation type>.*` -> `heads.<annotation type>.*` for the kept datasets' types (the number of PCA
  coefficients is read from the head's shape). The other datasets' heads and identity rows are left out and listed in
  the printed summary.

Each kept vertex dataset's PCA basis comes from its `pca.npz` of the data release (`components_to_data`, its first K
rows, and `original_data_mean`, as the published `PCALayer.decode`). A kept dataset named after a registry entry
(`biwi`, `vocaset`) takes its frame rate, mesh and scale from `ANIMATION_DATASETS`; any other keeps the published
table's annotation type, size, scale and PCA flag, at 30 fps (25 for BIWI, as the demo). Identity names: the registry's
training speakers when their count matches the published one (BIWI's 6: order assumed to be the registry's), else
`D<k>_id<j>` (VOCASET's D1 has all 12 speakers, in an order the release does not document); `--subjects NAME=a,b,...`
names them. The encoder's architecture comes from `--audio_encoder`'s config (a folder or Hub id) or, by default, from
`--size`'s built-in copy of it; every tensor must land on exactly one model tensor of the same shape (strict, via
`conversion_utils`).
"""

import argparse
from collections.abc import Mapping

import numpy as np
import torch
from transformers import AutoConfig, Wav2Vec2FeatureExtractor

from .configuration_animation import ANIMATION_DATASETS
from .configuration_unitalker import UNITALKER_SIZES, UniTalkerConfig
from .conversion_utils import rename_state_dict, state_dict_mismatches, tensor_shape
from .modeling_unitalker import UniTalkerForAnimation

# The published D0-D7 datasets (`dataset/dataset_config.py`), in identity order: annotation type, size, scale,
# identities, PCA.
PUBLISHED_DATASETS = {
    "D0": ("BIWI_23370_vertices", 70110, 0.2, 6, True),
    "D1": ("FLAME_5023_vertices", 15069, 1.0, 12, True),
    "D2": ("meshtalk_6172_vertices", 18516, 0.001, 13, True),
    "D3": ("3DETF_blendshape_weight", 52, 1.0, 141, False),
    "D4": ("3DETF_blendshape_weight", 52, 1.0, 24, False),
    "D5": ("flame_params_from_dadhead", 413, 1.0, 719, False),
    "D6": ("inhouse_blendshape_weight", 51, 1.0, 8, False),
    "D7": ("inhouse_blendshape_weight", 51, 1.0, 11, False),
}
STYLE_KEY = "decoder.learnable_style_emb.weight"


def identity_offsets(published: Mapping = PUBLISHED_DATASETS) -> dict[str, int]:
    """First row of each published dataset's identities in the D0-D7 table (D0 0, D1 6, D2 18, ...)."""
    offsets, row = {}, 0
    for key, (_, _, _, count, _) in published.items():
        offsets[key] = row
        row += count
    return offsets


def rename_published_key(key: str) -> str:
    """A published decoder / head name -> ours (the encoder's names are transformers' own)."""
    prefix = "decoder.tcn.first_net.conv_layers."
    if key.startswith(prefix):
        index, rest = key[len(prefix):].split(".", 1)
        rest = rest.replace("residual_layer.0.", "residual.")
        return f"decoder.layers.{index}.{rest}"
    if key.startswith("out_head_dict."):
        return "heads." + key[len("out_head_dict."):]
    return key


def dataset_entries(keep: Mapping[str, str], state_dict: Mapping, subjects: Mapping | None = None) -> list[dict]:
    """Our `datasets` entries for the kept published datasets (`{"D0": "biwi", ...}`, in order)."""
    entries = []
    for key, name in keep.items():
        if key not in PUBLISHED_DATASETS:
            raise ValueError(f"Unknown published dataset {key!r}; choose from {list(PUBLISHED_DATASETS)}.")
        annotation, size, scale, count, pca = PUBLISHED_DATASETS[key]
        facts = ANIMATION_DATASETS.get(name.lower())
        names = (subjects or {}).get(name)
        if names is None:
            names = list(facts.train_subjects) if facts and len(facts.train_subjects) == count else [
                f"{key}_id{j}" for j in range(count)]
        if len(names) != count:
            raise ValueError(f"{key} has {count} identities; --subjects gave {len(names)} for {name}.")
        head = state_dict.get(f"out_head_dict.{annotation}.weight")
        if head is None:
            raise ValueError(f"The checkpoint has no head out_head_dict.{annotation} for {key} ({name}).")
        if facts is not None and facts.vertice_dim != size:
            raise ValueError(f"{key} ({annotation}) is not {facts.display_name}'s mesh ({facts.vertice_dim} values).")
        entries.append({
            "name": name.lower(), "annotation_type": annotation, "vertice_dim": size, "subjects": list(names),
            "frame_rate": facts.frame_rate if facts else 30.0, "scale": scale, "pca": pca,
        })
    return entries


def convert_published_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    keep: Mapping[str, str],
    pca: Mapping[str, Mapping[str, np.ndarray]],
    audio_config=None,
    size: str = "base",
    subjects: Mapping[str, list[str]] | None = None,
) -> tuple[UniTalkerConfig, dict[str, torch.Tensor], list[str]]:
    """Published UniTalker state dict -> (our config, our state dict, the published keys left out).

    Args:
        state_dict: the flat published state dict (`UniTalker-B/L-D0-D7.pt`).
        keep: `{published id: our dataset name}` of the datasets to keep, in our identity order.
        pca: `{our dataset name: pca.npz contents}` for every kept vertex dataset.
        audio_config: the encoder's config (default: `size`'s architecture).
        size: `"base"` or `"large"`, for the default encoder config.
        subjects: `{our dataset name: identity names}` where the defaults do not fit.

    Returns:
        The config, a state dict with exactly the keys and shapes of `UniTalkerForAnimation(config).state_dict()`,
        and the published keys not taken (the other datasets' heads).

    Raises:
        ValueError: naming every missing, unexpected, duplicated or mis-shaped tensor, an identity table that is not
            D0-D7's, or a missing PCA file.
    """
    if not isinstance(state_dict, Mapping) or STYLE_KEY not in state_dict:
        raise ValueError(f"Expected UniTalker's flat state dict (with {STYLE_KEY}).")
    table = state_dict[STYLE_KEY]
    total = sum(count for *_, count, _ in PUBLISHED_DATASETS.values())
    if table.shape[0] != total + 1:
        raise ValueError(f"{STYLE_KEY} has {table.shape[0]} rows; D0-D7 have {total} identities + the pivot.")
    entries = dataset_entries(keep, state_dict, subjects)
    heads = {e["annotation_type"] for e in entries}
    left_out = sorted(k for k in state_dict if k.startswith("out_head_dict.") and k.split(".")[1] not in heads)
    kept = {k: v for k, v in state_dict.items() if k not in left_out and k != STYLE_KEY}
    renamed, _, sources = rename_state_dict(kept, rename_published_key)
    offsets = identity_offsets()
    rows = [offsets[key] + j for key in keep for j in range(PUBLISHED_DATASETS[key][3])] + [total]
    renamed["decoder.identity_embedding.weight"] = table[rows]
    sources["decoder.identity_embedding.weight"] = STYLE_KEY

    coefficients = {e["annotation_type"]: renamed[f"heads.{e['annotation_type']}.weight"].shape[0] for e in entries}
    for entry in entries:
        if not entry["pca"]:
            continue
        if entry["name"] not in pca:
            raise ValueError(f"Dataset {entry['name']} is predicted through PCA: give its pca.npz (--pca).")
        data, count = pca[entry["name"]], coefficients[entry["annotation_type"]]
        components = np.asarray(data["components_to_data"], dtype=np.float32)[:count]
        if components.shape != (count, entry["vertice_dim"]):
            raise ValueError(f"{entry['name']}'s pca.npz has components {components.shape}; the head needs "
                             f"({count}, {entry['vertice_dim']}).")
        renamed[f"pca.{entry['annotation_type']}.components"] = torch.from_numpy(components)
        renamed[f"pca.{entry['annotation_type']}.mean"] = torch.from_numpy(
            np.asarray(data["original_data_mean"], dtype=np.float32).reshape(-1))
    # One pca_dim for every vertex head (published 512, at most each mesh's size and its pca.npz's components).
    pca_dim = max([coefficients[e["annotation_type"]] for e in entries if e["pca"]], default=512)
    if audio_config is None:
        audio_config = dict(UNITALKER_SIZES[size]["audio_config"])
    config = UniTalkerConfig(audio_config=audio_config, dataset=None, datasets=entries, pca_dim=pca_dim,
                             hidden_size=renamed["decoder.audio_feature_map.weight"].shape[0],
                             identity_dim=table.shape[1])
    with torch.device("meta"):
        expected = {k: tensor_shape(v) for k, v in UniTalkerForAnimation(config).state_dict().items()}
    details = state_dict_mismatches(expected, renamed, lambda k: f"{sources.get(k, k)} -> {k}")
    if details:
        raise ValueError("The checkpoint does not match UniTalker (" + ", ".join(keep) + "): " + "; ".join(details))
    return config, renamed, left_out


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert a published UniTalker checkpoint (UniTalker-B/L-D0-D7.pt).")
    parser.add_argument("--checkpoint", required=True, help="the published flat state dict")
    parser.add_argument("--keep", nargs="+", required=True, help="published datasets to keep as ID=NAME, in order, "
                        "e.g. D0=biwi D1=vocaset")
    parser.add_argument("--pca", nargs="*", default=[], help="NAME=pca.npz for every kept vertex dataset")
    parser.add_argument("--subjects", nargs="*", default=[], help="NAME=a,b,c: identity names of a kept dataset")
    parser.add_argument("--size", choices=sorted(UNITALKER_SIZES), default="base", help="the encoder architecture "
                        "(base: WavLM-base-plus, large: wav2vec2-large-xlsr-53) when --audio_encoder is not given")
    parser.add_argument("--audio_encoder", default=None, help="folder or Hub id whose config (and feature extractor) "
                        "describe the encoder; the weights come from the checkpoint")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)

    def pairs(items, what):
        out = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise SystemExit(f"error: {what} takes KEY=VALUE, got {item!r}")
            out[key.strip()] = value
        return out

    state_dict = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    pca = {name: dict(np.load(path)) for name, path in pairs(args.pca, "--pca").items()}
    subjects = {name: value.split(",") for name, value in pairs(args.subjects, "--subjects").items()}
    audio_config = AutoConfig.from_pretrained(args.audio_encoder) if args.audio_encoder else None
    config, converted, left_out = convert_published_state_dict(
        state_dict, pairs(args.keep, "--keep"), pca, audio_config, args.size, subjects
    )
    model = UniTalkerForAnimation(config)
    model.load_state_dict(converted, strict=True)
    if args.audio_encoder:
        try:
            model.audio_feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(args.audio_encoder)
        except OSError:
            pass  # the model's default: 16 kHz, per-utterance normalisation
    model.eval().save_pretrained(args.output_dir)
    print(f"Converted {args.checkpoint} -> {args.output_dir}: datasets {config.dataset_names}, "
          f"{config.num_identities} identities (pivot last), heads {list(config.annotation_types)}; left out: "
          f"{sorted({k.split('.')[1] for k in left_out}) or 'nothing'} and the other datasets' identity rows.")


if __name__ == "__main__":
    main()
