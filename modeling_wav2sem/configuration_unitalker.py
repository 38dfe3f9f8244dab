# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""Configuration of UniTalker (Fan et al., "UniTalker: Scaling up Audio-Driven 3D Facial Animation through A Unified
Model", ECCV 2024) as a transformers model, with a swappable audio encoder.

UniTalker is trained on a mixture of datasets with different meshes: one decoder, one learned identity per training
speaker of every dataset plus a shared "pivot" identity, and one output head per annotation type. The config lists its
datasets (`datasets`: names from `ANIMATION_DATASETS`, or dicts of their facts), in identity order; the base fields
`vertice_dim`, `frame_rate` and `train_subjects` are those of the first (the one a call without `dataset=` uses).

This file imports only `transformers` and its sibling configuration files, so that it doubles as Hub remote code.
"""

import copy

from .configuration_animation import ANIMATION_DATASETS, AnimationConfig

# Presets per dataset or mixture (in identity order; the published D0-D7 order puts BIWI before VOCASET). A preset's
# `"data"` names the dataset whose facts fill the base fields (the first of the mixture).
UNITALKER_PRESETS: dict[str, dict] = {
    "vocaset": {"datasets": ["vocaset"]},
    "biwi": {"datasets": ["biwi"]},
    "biwi+vocaset": {"data": "biwi", "datasets": ["biwi", "vocaset"]},
}

# The published sizes differ only in the audio encoder: UniTalker-B on WavLM-base-plus (768 wide), UniTalker-L on
# wav2vec2-large-xlsr-53 (1024 wide); the decoder is the same. `from_preset(..., size=...)` builds that encoder's
# architecture (random weights; load the published encoder with `from_audio_encoder(repo)`).
UNITALKER_SIZES: dict[str, dict] = {
    "base": {
        "repo": "microsoft/wavlm-base-plus",
        "audio_config": {"model_type": "wavlm", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                         "intermediate_size": 3072},
    },
    "large": {
        "repo": "facebook/wav2vec2-large-xlsr-53",
        "audio_config": {"model_type": "wav2vec2", "hidden_size": 1024, "num_hidden_layers": 24,
                         "num_attention_heads": 16, "intermediate_size": 4096, "feat_extract_norm": "layer",
                         "do_stable_layer_norm": True, "conv_bias": True},
    },
}

# The facts of one dataset entry; the first entry's `vertice_dim`, `frame_rate` and `subjects` are the base fields.
DATASET_ENTRY_KEYS = ("name", "annotation_type", "vertice_dim", "frame_rate", "subjects", "scale", "pca")
_BASE_FIELDS = {"vertice_dim": "vertice_dim", "frame_rate": "frame_rate", "subjects": "train_subjects"}


def dataset_entry(item: "str | dict") -> dict:
    """A complete dataset entry from a registry name or a partial dict: the registry's facts where the dict leaves
    keys out (`annotation_type` from the mesh name and vertex count, `scale` UniTalker's vertex scale, `pca` True)."""
    entry = {"name": item} if isinstance(item, str) else dict(item)
    if "name" not in entry:
        raise ValueError(f"A dataset entry needs a `name`, got {item!r}.")
    unknown = sorted(set(entry) - set(DATASET_ENTRY_KEYS))
    if unknown:
        raise ValueError(f"Unknown keys {unknown} in the dataset entry {entry['name']!r}; known: {DATASET_ENTRY_KEYS}.")
    entry["name"] = entry["name"].lower()
    facts = ANIMATION_DATASETS.get(entry["name"])
    if facts is not None:
        entry.setdefault("vertice_dim", facts.vertice_dim)
        entry.setdefault("frame_rate", facts.frame_rate)
        entry.setdefault("subjects", list(facts.train_subjects))
        entry.setdefault("scale", facts.vertex_scale)
        entry.setdefault("annotation_type", facts.annotation_type(entry["vertice_dim"] // 3))
    entry.setdefault("scale", 1.0)
    entry.setdefault("pca", True)
    missing = [key for key in DATASET_ENTRY_KEYS if entry.get(key) is None]
    if missing:
        raise ValueError(f"The dataset entry {entry['name']!r} (not in the registry) must give {missing}.")
    entry["subjects"] = list(entry["subjects"])
    return {key: entry[key] for key in DATASET_ENTRY_KEYS}


class UniTalkerConfig(AnimationConfig):
    r"""
    Configuration of [`UniTalkerForAnimation`]: an audio encoder (wav2vec2-family, CNN frozen) whose output is
    linearly interpolated (`align_corners=True`) to the vertex frame count, `audio_feature_map` Linear(encoder width,
    `hidden_size`), dropout, the identity embedding (`identity_dim`) repeated over time and concatenated, a TCN of
    `num_tcn_layers` residual blocks (Conv1d of `tcn_kernel_size`, LayerNorm over channels, ReLU after the residual
    sum; the first block's residual is a Conv1d from `hidden_size + identity_dim` channels), and one zero-initialised
    Linear head per annotation type. A vertex dataset's head predicts `min(pca_dim, V*3)` coefficients of a fixed PCA
    basis of its training offsets (fitted with `fit_pca`); a dataset with `pca=False` (blendshape weights) is
    predicted directly. The result is added to the template.

    Fields left `None` are filled from the `dataset` preset (`"vocaset"`, `"biwi"`, `"biwi+vocaset"`, see
    `UNITALKER_PRESETS`) and the datasets' facts in `ANIMATION_DATASETS`. The common fields (`audio_config`,
    `dataset`, `vertice_dim`, `frame_rate`, `train_subjects`, `freeze_feature_encoder`, `sampling_rate`,
    `initializer_range`) are documented in [`AnimationConfig`]; here they describe the first dataset. Without an
    `audio_config` the encoder is WavLM-base-plus's architecture (UniTalker-B); `from_preset(name, size="large")`
    gives wav2vec2-large-xlsr-53's (UniTalker-L).

    Args:
        datasets (`list[str | dict]`): the training datasets in identity order, each a name from
            `ANIMATION_DATASETS` or a dict with `name`, `annotation_type`, `vertice_dim`, `frame_rate`, `subjects`
            (the dataset's identities), `scale` (its vertices are multiplied by it inside the model: BIWI 0.2, as
            published) and `pca` (`True`: vertices through a PCA basis; `False`: predicted directly). Registry names
            fill the missing keys. Datasets with the same `annotation_type` share one head (and must agree on
            `vertice_dim`).
        hidden_size (`int`, defaults to 256): the decoder width (`decoder_dimension`).
        identity_dim (`int`, defaults to 64): width of the identity embedding.
        num_tcn_layers (`int`, defaults to 3): residual conv blocks of the TCN (`min_layers_num`).
        tcn_kernel_size (`int`, defaults to 3): their temporal kernel (odd; "same" padding).
        dropout (`float`, defaults to 0.1): dropout on the mapped audio features, before the TCN.
        pca_dim (`int`, defaults to 512): PCA coefficients per vertex head (at most V*3).
        pca_loss_weight (`float`, defaults to 0.01): weight of the MSE between predicted coefficients and the PCA
            projection of the ground-truth offsets.
        pivot_identity (`bool`, defaults to `True`): one extra identity after all datasets' (the "pivot" / common
            style), used for speakers unseen in training (`subject_index=-1` or `"pivot"`).
        pivot_probability (`float`, defaults to 0.1): in training, each item's identity is replaced by the pivot
            with this probability (`random_id_prob`), so that the pivot learns a common style.

    Example:

    ```python
    >>> from modeling_wav2sem import UniTalkerConfig
    >>> config = UniTalkerConfig.from_preset("biwi+vocaset")
    >>> config.audio_config.model_type, config.audio_hidden_size, config.num_identities
    ('wavlm', 768, 15)
    >>> [d["annotation_type"] for d in config.datasets]
    ['BIWI_23370_vertices', 'FLAME_5023_vertices']
    >>> UniTalkerConfig.from_preset("vocaset", size="large").audio_hidden_size
    1024
    ```
    """

    model_type = "wav2sem-unitalker"
    presets = UNITALKER_PRESETS

    datasets: list | None = None
    hidden_size: int = 256
    identity_dim: int = 64
    num_tcn_layers: int = 3
    tcn_kernel_size: int = 3
    dropout: float | int = 0.1
    pca_dim: int = 512
    pca_loss_weight: float | int = 0.01
    pivot_identity: bool = True
    pivot_probability: float | int = 0.1

    def __post_init__(self, **kwargs):
        if self.audio_config is None:
            self.audio_config = copy.deepcopy(UNITALKER_SIZES["base"]["audio_config"])
        self._given_base_fields = {key for key in _BASE_FIELDS.values() if getattr(self, key, None) is not None}
        super().__post_init__(**kwargs)
        del self._given_base_fields

    def _fill_from_preset(self):
        if self.dataset is None and self.datasets:  # custom: the base fields are the first dataset's
            first = dataset_entry(self.datasets[0])
            for key, base in _BASE_FIELDS.items():
                if getattr(self, base, None) is None:
                    setattr(self, base, copy.deepcopy(first[key]))
        super()._fill_from_preset()
        if not self.datasets:
            raise ValueError("datasets must name at least one dataset.")
        entries = [dataset_entry(item) for item in self.datasets]
        first, given = entries[0], getattr(self, "_given_base_fields", set(_BASE_FIELDS.values()))
        explicit = {} if isinstance(self.datasets[0], str) else self.datasets[0]
        for key, base in _BASE_FIELDS.items():
            # A base field given to the config wins; else the first entry's own key; else the facts (equal).
            if base not in given and key in explicit:
                setattr(self, base, copy.deepcopy(explicit[key]))
            first[key] = copy.deepcopy(getattr(self, base))
        if "annotation_type" not in explicit and first["name"] in ANIMATION_DATASETS:  # follows the vertex count
            first["annotation_type"] = ANIMATION_DATASETS[first["name"]].annotation_type(first["vertice_dim"] // 3)
        self.datasets = entries

    def validate_architecture(self):
        """Reject inconsistent settings with a clear message."""
        super().validate_architecture()
        names = [d["name"] for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"datasets lists a dataset twice: {names}.")
        sizes = {}
        for entry in self.datasets:
            if entry["vertice_dim"] < 1 or (entry["pca"] and entry["vertice_dim"] % 3):
                raise ValueError(f"Dataset {entry['name']!r}: vertice_dim must be a positive multiple of 3 (V*3).")
            if entry["frame_rate"] <= 0 or entry["scale"] <= 0:
                raise ValueError(f"Dataset {entry['name']!r}: frame_rate and scale must be > 0.")
            if not entry["subjects"] or len(set(entry["subjects"])) != len(entry["subjects"]):
                raise ValueError(f"Dataset {entry['name']!r}: subjects must be non-empty and without duplicates.")
            kind = (entry["vertice_dim"], bool(entry["pca"]))
            if sizes.setdefault(entry["annotation_type"], kind) != kind:
                raise ValueError(
                    f"Datasets sharing the annotation type {entry['annotation_type']!r} must share vertice_dim and pca."
                )
        for name in ("hidden_size", "identity_dim", "num_tcn_layers", "pca_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.tcn_kernel_size < 1 or self.tcn_kernel_size % 2 == 0:
            raise ValueError(f"tcn_kernel_size must be odd (same padding), got {self.tcn_kernel_size}.")
        if not 0 <= self.dropout < 1 or self.pca_loss_weight < 0:
            raise ValueError("dropout must be in [0, 1) and pca_loss_weight >= 0.")
        if not 0 <= self.pivot_probability <= 1:
            raise ValueError(f"pivot_probability must be in [0, 1], got {self.pivot_probability}.")
        if self.pivot_probability > 0 and not self.pivot_identity:
            raise ValueError("pivot_probability > 0 needs pivot_identity=True (the identity it trains).")

    @classmethod
    def from_preset(cls, name: str, size: str | None = None, **overrides) -> "UniTalkerConfig":
        """The published settings for dataset (or mixture) `name`; `size` `"base"` (WavLM-base-plus, UniTalker-B) or
        `"large"` (wav2vec2-large-xlsr-53, UniTalker-L) sets the encoder's architecture unless `audio_config` is
        given."""
        if size is not None:
            if size not in UNITALKER_SIZES:
                raise ValueError(f"size must be one of {sorted(UNITALKER_SIZES)}, got {size!r}.")
            overrides.setdefault("audio_config", copy.deepcopy(UNITALKER_SIZES[size]["audio_config"]))
        return super().from_preset(name, **overrides)

    # -- datasets and identities ---------------------------------------------------------------------------------------

    @property
    def dataset_names(self) -> list[str]:
        return [d["name"] for d in self.datasets]

    def dataset_entry(self, name: str | None = None) -> dict:
        """The entry of dataset `name` (the first for `None`), with a clear error for one the model was not built
        for."""
        if name is None:
            return self.datasets[0]
        for entry in self.datasets:
            if entry["name"] == str(name).lower():
                return entry
        raise ValueError(f"Unknown dataset {name!r}: this model has heads for {self.dataset_names}.")

    def identity_offset(self, name: str | None = None) -> int:
        """Index of the dataset's first identity in the identity table (datasets in order)."""
        offset = 0
        for entry in self.datasets:
            if entry is self.dataset_entry(name):
                return offset
            offset += len(entry["subjects"])
        raise AssertionError("unreachable")

    @property
    def pivot_index(self) -> int | None:
        """The pivot identity's row (the last), or `None` without one."""
        return sum(len(d["subjects"]) for d in self.datasets) if self.pivot_identity else None

    @property
    def num_identities(self) -> int:
        return sum(len(d["subjects"]) for d in self.datasets) + int(self.pivot_identity)

    @property
    def annotation_types(self) -> dict[str, dict]:
        """`{annotation type: {"vertice_dim", "pca", "num_coefficients"}}`, one head each, in dataset order."""
        types = {}
        for entry in self.datasets:
            out = min(self.pca_dim, entry["vertice_dim"]) if entry["pca"] else entry["vertice_dim"]
            types.setdefault(
                entry["annotation_type"],
                {"vertice_dim": entry["vertice_dim"], "pca": bool(entry["pca"]), "num_coefficients": out},
            )
        return types


__all__ = ["UNITALKER_PRESETS", "UNITALKER_SIZES", "UniTalkerConfig", "dataset_entry"]
