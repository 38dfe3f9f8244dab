# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch UniTalker (Fan et al., "UniTalker: Scaling up Audio-Driven 3D Facial Animation through A Unified Model",
ECCV 2024) as a transformers model whose audio encoder is any wav2vec2-family model loaded with `AutoModel` (WavLM,
Wav2Vec2, HuBERT, Data2VecAudio) or a `Wav2SemFusedEncoder` (baseline + Wav2Sem).

One model for a mixture of datasets with different meshes: the encoder's output (F_p, or the fused F_d) interpolated
to the vertex frame count (`interpolate_pos: 1`), `audio_feature_map` to the decoder width (FC2 of Wav2Sem for a fused
encoder), the learned identity embedding concatenated over time, a TCN of residual Conv1d blocks with LayerNorm (the
published `UniTalkerDecoderTCN`), and one zero-initialised head per annotation type: a vertex dataset's head predicts
coefficients of a fixed PCA basis of its training offsets (buffers saved with the model, `fit_pca`), a blendshape
dataset's head predicts the weights directly. Every call is for one dataset (`dataset=`), one mesh type per batch.

Written fresh from the published model's description (`models/unitalker.py`, `unitalker_decoder.py`,
`model_utils.py`, `pca.py` of github.com/X-niper/UniTalker, Apache-2.0). Checked against that code on the same
random weights (its `UniTalkerDecoderTCN` loaded strictly with this decoder's weights under the published names,
`nn.Linear` heads and `PCALayer.decode`, batch 1, eval mode, run in /tmp, not part of this package): the decoder
output is identical (max abs difference 0.0) and the scaled vertices agree within 2.4e-7 (fp32, 150 frames of
768-wide features, a BIWI-layout and a VOCASET-layout dataset, 64 PCA coefficients). Differences, on purpose:

- Padded batches: each item's TCN input is zeroed past its last frame before every block, so an item gives the
  result it gives alone (the published model trains at batch size 1); the loss counts real frames only.
- Vertices in and out are in the dataset's own units: the dataset `scale` (BIWI 0.2) is applied inside, so outputs,
  the PCA basis and the losses are in UniTalker's scaled space, as published, and the runner scores every model alike.
- Frames without labels: floor(duration x fps) as every model of this package (the published demo rounds).
- `predict_long` reproduces the demo's 25 s windows with 5 s overlap and linear cross-fade on audio already prepared
  as a whole (the demo re-normalises each window with the feature extractor).

Read top to bottom: output, the PCA basis, the TCN, the model. What every animation model shares (the audio encoder
contract, templates, labels, freezing, the saved feature extractor) is in `modeling_animation.py`.

Shapes: B batch, L samples, T vertex frames, C encoder width, d decoder width (256), I identity width (64), K PCA
coefficients (min(pca_dim, V*3)), V3 = V*3 flattened vertices of the chosen dataset.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import initialization as init

from .configuration_unitalker import UniTalkerConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel, masked_mean_squared_error

# ----------------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class UniTalkerOutput(AnimationOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        `reconstruction_loss + pca_loss_weight * pca_loss`; when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The predicted meshes of the chosen dataset, in its units (for a blendshape dataset: its weights).
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, T, C)`):
        The audio encoder's output (F_p, or F_d for a fused encoder) interpolated to the vertex frames.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`):
        The TCN's output, before the head; zero on padded frames.
    coefficients (`torch.FloatTensor` of shape `(B, T, K)`):
        The head's output: PCA coefficients (scaled space) of a vertex dataset, the weights of a blendshape one.
    reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*):
        MSE over the real frames between predicted and ground-truth vertices, both times the dataset's `scale`.
    pca_loss (`torch.FloatTensor` of shape `()`, *optional*):
        MSE over the real frames between `coefficients` and the PCA projection of the ground-truth offsets (scaled);
        `None` for a dataset without PCA.
    """

    coefficients: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    pca_loss: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# PCA basis
# ----------------------------------------------------------------------------------------------------------------------


class UniTalkerPCA(nn.Module):
    """A fixed linear basis of one vertex annotation type (the published `PCALayer`): `components` `(K, V3)` with
    orthonormal rows and the `mean` `(V3,)` offset, buffers saved with the model. Before `fit_pca` the basis is the
    first K coordinate axes (coefficients are offsets), so an unfitted model still works."""

    def __init__(self, num_coefficients: int, vertice_dim: int):
        super().__init__()
        self.register_buffer("components", torch.eye(num_coefficients, vertice_dim))
        self.register_buffer("mean", torch.zeros(vertice_dim))

    def encode(self, offsets: torch.Tensor) -> torch.Tensor:
        """`(..., V3)` offsets -> `(..., K)` coefficients."""
        return (offsets - self.mean.to(offsets.dtype)) @ self.components.to(offsets.dtype).T

    def decode(self, coefficients: torch.Tensor) -> torch.Tensor:
        """`(..., K)` coefficients -> `(..., V3)` offsets."""
        return coefficients @ self.components.to(coefficients.dtype) + self.mean.to(coefficients.dtype)


def principal_components(data: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(count, D)` principal directions (orthonormal rows, by decreasing variance) and the `(D,)` mean of `(N, D)`
    data, exactly in fp64 (through the smaller of the N x N and D x D products). Directions beyond the data's rank are
    zero rows."""
    data = data.double()
    mean = data.mean(0)
    centred = data - mean
    samples, dims = centred.shape
    if samples <= dims:
        values, vectors = torch.linalg.eigh(centred @ centred.T)  # ascending
        values, vectors = values.flip(0), vectors.flip(1)
        keep = values > values.max().clamp_min(1e-300) * 1e-10
        directions = (vectors[:, keep].T @ centred) / values[keep].sqrt()[:, None]
    else:
        values, vectors = torch.linalg.eigh(centred.T @ centred)
        values, vectors = values.flip(0), vectors.flip(1)
        keep = values > values.max().clamp_min(1e-300) * 1e-10
        directions = vectors[:, keep].T
    components = data.new_zeros(count, dims)
    rank = min(count, directions.shape[0])
    components[:rank] = directions[:rank]
    return components, mean


# ----------------------------------------------------------------------------------------------------------------------
# TCN
# ----------------------------------------------------------------------------------------------------------------------


class UniTalkerTCNBlock(nn.Module):
    """One residual block (the published `ConvNormRelu`, 1-d, LayerNorm, dropout 0): `relu(norm(conv(x)) + res(x))`
    with "same" padding; `residual` is a Conv1d of the same kernel where the widths differ (the first block), else
    the identity. `(B, C_in, T) -> (B, C_out, T)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding)
        self.norm = nn.LayerNorm(out_channels)
        self.residual = None
        if in_channels != out_channels:
            self.residual = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        if frame_mask is not None:  # zero past each item's frames, as the zero padding of the item alone
            hidden = hidden * frame_mask
        out = self.norm(self.conv(hidden).transpose(1, 2)).transpose(1, 2)
        return F.relu(out + (hidden if self.residual is None else self.residual(hidden)))


class UniTalkerDecoder(nn.Module):
    """`audio_feature_map`, dropout, the identity concatenated over time, and the TCN: `(B, T, C)` audio features and
    `(B, I)` identity embeddings -> `(B, T, d)`."""

    def __init__(self, config: UniTalkerConfig):
        super().__init__()
        self.audio_feature_map = nn.Linear(config.audio_hidden_size, config.hidden_size)
        self.identity_embedding = nn.Embedding(config.num_identities, config.identity_dim)
        self.dropout = nn.Dropout(config.dropout)
        width = config.hidden_size + config.identity_dim
        self.layers = nn.ModuleList()
        for _ in range(config.num_tcn_layers):
            self.layers.append(UniTalkerTCNBlock(width, config.hidden_size, config.tcn_kernel_size))
            width = config.hidden_size

    def forward(
        self, audio_features: torch.Tensor, identity: torch.Tensor, vertex_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.dropout(self.audio_feature_map(audio_features)).transpose(1, 2)  # (B, d, T)
        style = identity[:, :, None].to(hidden.dtype).expand(-1, -1, hidden.shape[-1])  # (B, I, T)
        hidden = torch.cat([hidden, style], dim=1)
        frame_mask = None if vertex_mask is None else vertex_mask[:, None].to(hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, frame_mask)
        hidden = hidden.transpose(1, 2)
        return hidden if vertex_mask is None else hidden * vertex_mask[..., None].to(hidden.dtype)


class UniTalkerHead(nn.Linear):
    """An annotation type's output layer `(B, T, d) -> (B, T, K)`, zero-initialised (weight and bias), as published."""


# ----------------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------------


class UniTalkerPreTrainedModel(AnimationPreTrainedModel):
    config: UniTalkerConfig
    config_class = UniTalkerConfig
    base_model_prefix = "unitalker"
    resample_point = "output"  # interpolate_pos 1: the encoder's output is interpolated to the vertex frames

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, UniTalkerHead):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, UniTalkerPCA):
            init.eye_(module.components)
            init.zeros_(module.mean)
        else:
            super()._init_weights(module)


class UniTalkerForAnimation(UniTalkerPreTrainedModel):
    r"""
    UniTalker: an audio encoder (CNN frozen) interpolated to the vertex frames, a TCN decoder conditioned on a learned
    identity, and one zero-initialised head per annotation type (PCA coefficients for vertex datasets). Every call
    animates one dataset of `config.datasets` (`dataset=`, default the first) with one of its identities.

    Example:

    ```python
    >>> import torch
    >>> from transformers import WavLMConfig
    >>> from modeling_wav2sem import UniTalkerConfig, UniTalkerForAnimation
    >>> config = UniTalkerConfig.from_preset(
    ...     "biwi+vocaset", audio_config=WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
    ...     intermediate_size=37, conv_dim=(16,) * 7), datasets=[{"name": "biwi", "vertice_dim": 90},
    ...     {"name": "vocaset", "vertice_dim": 60}], vertice_dim=90)
    >>> model = UniTalkerForAnimation(config).eval()
    >>> model.predict(torch.randn(1, 16000), torch.zeros(60), "pivot", dataset="vocaset").vertices.shape  # 30 fps
    torch.Size([1, 29, 60])
    >>> model.predict(torch.randn(1, 16000), torch.zeros(90), "F2", dataset="biwi").vertices.shape  # 25 fps
    torch.Size([1, 24, 90])
    ```
    """

    def __init__(self, config: UniTalkerConfig, audio_encoder=None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)
        self.decoder = UniTalkerDecoder(config)
        types = config.annotation_types
        self.heads = nn.ModuleDict(
            {name: UniTalkerHead(config.hidden_size, spec["num_coefficients"]) for name, spec in types.items()}
        )
        self.pca = nn.ModuleDict(
            {name: UniTalkerPCA(spec["num_coefficients"], spec["vertice_dim"]) for name, spec in types.items()
             if spec["pca"]}
        )
        self.post_init()

    # -- identities ----------------------------------------------------------------------------------------------------

    def identity_index(self, subject_index, dataset: str | None, batch: int, device) -> torch.Tensor:
        """`(B,)` rows of the identity table from the dataset's identities (an index into its `subjects`, a name, a
        list or a `(B,)` tensor), where `-1` or `"pivot"` is the pivot identity (speakers unseen in training)."""
        entry = self.config.dataset_entry(dataset)
        subjects, offset, pivot = entry["subjects"], self.config.identity_offset(dataset), self.config.pivot_index
        if subject_index is None:
            raise ValueError("Give subject_index (an identity of the dataset, by index or name, or -1 / 'pivot').")

        def local(item) -> int:
            if isinstance(item, str):
                if item == "pivot":
                    return -1
                if item not in subjects:
                    raise ValueError(f"Unknown subject {item!r} of {entry['name']}; its identities: {subjects}.")
                return subjects.index(item)
            return int(item)

        if isinstance(subject_index, (str, int)):
            subject_index = [local(subject_index)]
        elif isinstance(subject_index, (list, tuple)):
            subject_index = [local(item) for item in subject_index]
        index = torch.as_tensor(subject_index, device=device).long().reshape(-1)
        if index.numel() == 1:
            index = index.expand(batch)
        if index.numel() != batch:
            raise ValueError(f"subject_index has {index.numel()} entries for a batch of {batch}.")
        if bool(((index < -1) | (index >= len(subjects))).any()):
            raise ValueError(
                f"subject_index must be in [0, {len(subjects)}) (the identities of {entry['name']}) or -1 (the pivot), "
                f"got {index.tolist()}."
            )
        if bool((index == -1).any()) and pivot is None:
            raise ValueError("This model has no pivot identity (pivot_identity=False): give a training identity.")
        return torch.where(index == -1, torch.full_like(index, pivot if pivot is not None else 0), index + offset)

    def identity_embeddings(self, subject_index, subject_one_hot, dataset, batch: int, device) -> torch.Tensor:
        """`(B, I)` identity embeddings; in training each item's is the pivot's with `pivot_probability`. Mixing
        weights over the dataset's identities (`subject_one_hot`, `(B, S)`) blend their embeddings."""
        table = self.decoder.identity_embedding.weight
        if subject_one_hot is not None:
            entry, offset = self.config.dataset_entry(dataset), self.config.identity_offset(dataset)
            count = len(entry["subjects"])
            if subject_one_hot.shape[-1] != count:
                raise ValueError(f"subject_one_hot must have {count} columns, got {tuple(subject_one_hot.shape)}.")
            weights = subject_one_hot.to(device=device, dtype=table.dtype).reshape(-1, count).expand(batch, -1)
            index = None
            embeddings = weights @ table[offset : offset + count]
        else:
            index = self.identity_index(subject_index, dataset, batch, device)
            embeddings = table[index]
        if self.training and self.config.pivot_probability > 0:
            replace = torch.rand(batch, device=device) < self.config.pivot_probability
            embeddings = torch.where(replace[:, None], table[self.config.pivot_index][None], embeddings)
        return embeddings

    # -- PCA -----------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def fit_pca(self, offsets: torch.Tensor, dataset: str | None = None) -> torch.Tensor:
        r"""Set the PCA basis of `dataset`'s annotation type from its training offsets (published: `pca.npz` built from
        the training split, issue #18), in the scaled space (offsets times the dataset's `scale`).

        Args:
            offsets (`(N, V*3)` or `(N, V, 3)`): training frames minus their speaker's template, in the dataset's
                units. Exact in fp64; with fewer than K + 1 frames the directions beyond the rank are zero.
            dataset: the dataset (default the first).

        Returns:
            `(K, V*3)` the basis (orthonormal rows, decreasing variance).
        """
        entry = self.config.dataset_entry(dataset)
        if not entry["pca"]:
            raise ValueError(f"Dataset {entry['name']!r} is predicted directly (pca=False): it has no PCA basis.")
        offsets = self.flat_vertices(offsets.reshape(-1, *offsets.shape[-2:]) if offsets.dim() > 2 else offsets,
                                     "offsets", 2, entry["vertice_dim"])
        basis = self.pca[entry["annotation_type"]]
        components, mean = principal_components(offsets * entry["scale"], basis.components.shape[0])
        basis.components.copy_(components.to(basis.components.dtype))
        basis.mean.copy_(mean.to(basis.mean.dtype))
        return basis.components

    # -- forward -------------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        vertex_mask: torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        dataset: str | None = None,
        return_dict: bool | None = None,
    ) -> UniTalkerOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh of the
                dataset, in its units (zeros for blendshape weights).
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the identity, by index in the
                dataset's `subjects` or by name; `-1` or `"pivot"` for the pivot (a speaker unseen in training).
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground truth of the
                dataset; with them `loss = MSE(scaled vertices) + pca_loss_weight * MSE(coefficients)`.
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, S)`, *optional*): mixing weights over the dataset's
                identities, instead of `subject_index`.
            num_frames (`int` or `torch.LongTensor` of shape `(B,)`, *optional*): frames to predict without `labels`;
                by default floor(duration x the dataset's frame rate).
            dataset (`str`, *optional*): which of `config.datasets` the batch belongs to (its head, identities, frame
                rate, mesh, scale); default the first. One dataset per batch.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        entry = self.config.dataset_entry(dataset)
        vertice_dim, scale = entry["vertice_dim"], entry["scale"]
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames, vertice_dim, entry["frame_rate"]
        )
        batch = input_values.shape[0]
        template = self.prepare_template(template, batch, audio_features.dtype, vertice_dim)  # (B, V3)
        identity = self.identity_embeddings(subject_index, subject_one_hot, dataset, batch, audio_features.device)

        hidden = self.decoder(audio_features, identity, vertex_mask)  # (B, T, d)
        coefficients = self.heads[entry["annotation_type"]](hidden)  # (B, T, K)
        basis = self.pca[entry["annotation_type"]] if entry["pca"] else None
        offsets = coefficients if basis is None else basis.decode(coefficients)  # scaled space
        vertices = template[:, None] + offsets / scale

        loss = reconstruction = pca_loss = None
        if labels is not None:
            reconstruction = masked_mean_squared_error(vertices * scale, labels * scale, vertex_mask)
            loss = reconstruction
            if basis is not None:
                target = basis.encode((labels - template[:, None]).float() * scale)
                pca_loss = masked_mean_squared_error(coefficients, target, vertex_mask)
                loss = loss + self.config.pca_loss_weight * pca_loss

        output = UniTalkerOutput(
            loss=loss, vertices=vertices, vertex_mask=vertex_mask, audio_features=audio_features,
            last_hidden_state=hidden, coefficients=coefficients, reconstruction_loss=reconstruction, pca_loss=pca_loss,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def predict(
        self, input_values: torch.Tensor, template: torch.Tensor, subject_index=None, **kwargs
    ) -> UniTalkerOutput | tuple:
        r"""Animate a clip (call `.eval()` first) for `dataset`'s head and an identity of it (`"pivot"` / `-1` for an
        unseen speaker): `vertices` `(B, T, V*3)` at the dataset's frame rate and, for unequal clips, `vertex_mask`.
        Takes `forward`'s keyword arguments except `labels` and `vertex_mask` (`attention_mask`, `num_frames`,
        `subject_one_hot`, `dataset`, `return_dict`)."""
        refused = sorted({"labels", "vertex_mask"} & set(kwargs))
        if refused:
            raise ValueError(f"predict takes no {refused}: call the model (forward) to compute a loss.")
        return self.forward(input_values, template, subject_index, **kwargs)

    generate = predict

    @torch.no_grad()
    def predict_long(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        dataset: str | None = None,
        window_seconds: float = 25.0,
        overlap_seconds: float = 5.0,
        subject_one_hot: torch.Tensor | None = None,
    ) -> UniTalkerOutput:
        r"""Animate long audio as the published demo does: windows of `window_seconds` overlapping by
        `overlap_seconds`, each predicted alone, cross-faded linearly over the overlap (the earlier window's weight
        falls from 1 to 0 over the overlap's frames). Where one window covers the audio this is `predict`.

        Args:
            input_values (`(B, L)`): unpadded clips of one length, prepared as the encoder expects (as a whole).
            template, subject_index, dataset, subject_one_hot: as `predict`.

        Returns:
            `UniTalkerOutput` with `vertices` `(B, T, V*3)`, T = floor(duration x the dataset's frame rate).
        """
        if not torch.is_tensor(input_values) or input_values.dim() != 2:
            raise ValueError("input_values must be a (batch, samples) tensor of unpadded mono audio of one length.")
        fps = self.config.dataset_entry(dataset)["frame_rate"]
        window, overlap = round(window_seconds * fps), round(overlap_seconds * fps)
        if overlap < 0 or window <= overlap:
            raise ValueError(f"Need window_seconds > overlap_seconds >= 0, got {window_seconds} and {overlap_seconds}.")
        lengths = torch.full((input_values.shape[0],), input_values.shape[1], dtype=torch.long)
        total = self.num_frames_for_audio([int(self.audio_frame_lengths(lengths)[0])], fps)[0]
        kwargs = dict(subject_index=subject_index, subject_one_hot=subject_one_hot, dataset=dataset)
        if total <= window:
            return self.predict(input_values, template, **kwargs)
        samples_per_frame = self.config.sampling_rate / fps
        merged, start = None, 0
        while True:
            end = min(start + window, total)
            audio = input_values[:, int(start * samples_per_frame) : int(round(end * samples_per_frame))]
            piece = self.predict(audio, template, num_frames=end - start, **kwargs).vertices
            if merged is None:
                merged = piece.new_empty(piece.shape[0], total, piece.shape[-1])
                merged[:, :end] = piece
            else:
                fade = torch.linspace(1, 0, overlap, device=piece.device, dtype=piece.dtype)[None, :, None]
                seam = slice(start, start + overlap)
                merged[:, seam] = fade * merged[:, seam] + (1 - fade) * piece[:, :overlap]
                merged[:, start + overlap : end] = piece[:, overlap:]
            if end == total:
                break
            start += window - overlap
        return UniTalkerOutput(vertices=merged)


__all__ = [
    "UniTalkerDecoder",
    "UniTalkerForAnimation",
    "UniTalkerHead",
    "UniTalkerOutput",
    "UniTalkerPCA",
    "UniTalkerPreTrainedModel",
    "principal_components",
]
