# Copyright 2026 The wav2sem authors. Licensed under the Apache License, Version 2.0.
"""PyTorch CodeTalker (Xing et al., CVPR 2023; github.com/Doubiiu/CodeTalker, MIT) as transformers models.

Stage 1, [`CodeTalkerVQVAE`]: a Transformer VQ-VAE that learns a discrete codebook of facial motion from vertex
offsets alone (no audio). Stage 2, [`CodeTalkerForAnimation`]: FaceFormer's autoregressive decoder over the audio
encoder's frames, predicting each frame's stage-1 latent, which the frozen stage-1 model quantises and decodes. The
audio encoder is any wav2vec2-family `AutoModel` or a `Wav2SemFusedEncoder`: its `last_hidden_state` (F_p, or the
fused F_d) goes through `audio_feature_map`, exactly where the official Wav2Sem port adds its semantic term (and the
same at training and inference, for any batch size; the Wav2Sem module stays in eval mode: the animation base's
encoder contract).

Read top to bottom: outputs, the stage-1 building blocks (masked conv and instance norm, the published positional
encoding, attention, Transformer), the quantiser, stage 1, stage 2. Imports only torch, transformers and the sibling
files, so the file doubles as Hub remote code. Module names follow the original (`encoder.vertice_mapping`,
`encoder.squasher`, `encoder.encoder_transformer`, `quantize.embedding`, `decoder.vertice_map_reverse`;
`audio_feature_map`, `vertice_map`, `transformer_decoder`, `feat_map`, `learnable_style_emb`, `autoencoder`), with
the original's `nn.Sequential` wrappers flattened (`convert_codetalker_original_checkpoint.py` maps the keys).

Numerics kept from the published code, because they decide what a checkpoint means:

- the VQ-VAE's positional encoding indexes its `(5000, 1, hidden)` table with the batch axis of a batch-first tensor,
  so (at the published batch size 1) every frame gets the same row `pe[0]` = (0, 1, 0, 1, ...): the VQ Transformers
  see no position. We add that row to every frame of every item (the published code would add row b to item b of a
  larger batch, which nothing trained on);
- the VQ attention scales its logits by `hidden_size ** -0.5` (1/32), not `head_dim ** -0.5`;
- the VQ MLP uses the tanh approximation of GELU; LayerNorm eps 1e-5; instance norm without affine parameters;
- stage 2's autoregressive loop feeds back the last frame of the decoded (quantised) prefix, and starts from the
  style embedding alone (training's first input is `vertice_map(0) + style`), as FaceFormer.

Reconstructed rather than copied: padded batches (the original trains and predicts with batch 1). Each item's conv
replicate-pads at its own last frame, its instance norm uses its own frames, its attention sees only its own frames,
so an item gives the same result alone and in a padded batch. The cached inference loop (`use_cache=True`) is ours:
the predictor's self-attention keys and values are kept per layer and each step attends only to its aligned audio
frames; the stage-1 decoder is non-causal (instance norm over time, full attention), so it is still re-run over the
quantised prefix at every step, exactly as the original, but its output layer only for the frame fed back. The naive
loop (`use_cache=False`) mirrors the original's and is the tested reference: both give the same vertices.

Checked against the published code (github.com/Doubiiu/CodeTalker at 1b7cb95, run under transformers 5.24 with two
shims in its `Wav2Vec2Model` subclass: no `config.output_attentions = True`, which SDPA refuses, and
`feature_projection(...)[0]`, which returns a tuple since transformers 4.7), loading the same random weights through
`convert_codetalker_original_checkpoint.py` at the published sizes (wav2vec2-base-size encoder, d 1024, a 1024-wide
6-layer VQ-VAE, 15,069 / 70,110 values per frame), 2 s of audio: stage-1 reconstructions within 2.7e-6 (VOCASET) and
3.9e-6 (BIWI) on outputs of about 3, the same codes; stage-2 predictions within 2.6e-6 and 2.8e-6 (cached) and
2.7e-6 and 3.0e-6 (naive loop), the same teacher-forced loss.

Shapes: B batch, L samples, T vertex frames, k audio frames per vertex frame (1 VOCASET, 2 BIWI), C encoder width,
d decoder width, H stage-1 hidden size, n tokens per frame, c code width, K codebook size, V3 = V*3.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_codetalker import CodeTalkerConfig, CodeTalkerVQVAEConfig
from .modeling_animation import AnimationOutput, AnimationPreTrainedModel, masked_mean_squared_error
from .modeling_faceformer import (
    CachedAlignedDecoder,
    FaceFormerDecoderMixin,
    periodic_positional_encoding,
)


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class CodeTalkerVQVAEOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`):
        L1 reconstruction loss + `quant_loss_weight` x codebook loss, over the real frames.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The reconstruction: the decoded offsets plus the template.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    quantized_latents (`torch.FloatTensor` of shape `(B, T*n, c)`):
        The codes of each token (straight-through: their gradient flows to `latents`).
    latents (`torch.FloatTensor` of shape `(B, T*n, c)`):
        The encoder's output before quantisation.
    code_indices (`torch.LongTensor` of shape `(B, T*n)`):
        The index of each token's code.
    reconstruction_loss (`torch.FloatTensor` of shape `()`), codebook_loss (`torch.FloatTensor` of shape `()`),
    perplexity (`torch.FloatTensor` of shape `()`): the loss terms and the codebook usage over the real tokens.
    """

    loss: torch.FloatTensor | None = None
    vertices: torch.FloatTensor | None = None
    vertex_mask: torch.BoolTensor | None = None
    quantized_latents: torch.FloatTensor | None = None
    latents: torch.FloatTensor | None = None
    code_indices: torch.LongTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None


@dataclass
class CodeTalkerOutput(AnimationOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        `motion_weight` x MSE(vertices) + `reg_weight` x MSE(predicted latents, quantised stage-1 latents of the
        ground truth), over the real frames; when `labels` are given.
    vertices (`torch.FloatTensor` of shape `(B, T, V*3)`):
        The predicted meshes: the stage-1 decoding of the quantised predicted latents, plus the template.
    vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*):
        True on each item's real frames; `None` when every item has all `T` frames.
    audio_features (`torch.FloatTensor` of shape `(B, k*T, C)`):
        The audio encoder's `last_hidden_state` at the vertex-aligned rate (F_p, or F_d), before `audio_feature_map`.
    last_hidden_state (`torch.FloatTensor` of shape `(B, T, d)`):
        The decoder's output, before `feat_map`.
    latents (`torch.FloatTensor` of shape `(B, T*n, c)`):
        The predicted stage-1 latents, before quantisation.
    code_indices (`torch.LongTensor` of shape `(B, T*n)`):
        The codes they were quantised to.
    motion_loss (`torch.FloatTensor` of shape `()`, *optional*), feature_loss (`torch.FloatTensor` of shape `()`,
    *optional*): the two loss terms.
    """

    latents: torch.FloatTensor | None = None
    code_indices: torch.LongTensor | None = None
    motion_loss: torch.FloatTensor | None = None
    feature_loss: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Stage-1 building blocks
# ----------------------------------------------------------------------------------------------------------------------


def masked_instance_norm(hidden: torch.Tensor, frame_mask: torch.Tensor | None, eps: float) -> torch.Tensor:
    """`(B, T, H)`, each item and channel normalised over its own real frames (`nn.InstanceNorm1d(affine=False)`:
    biased variance). A single frame normalises to zero, as in the original's eval mode."""
    if frame_mask is None:
        mean = hidden.mean(1, keepdim=True)
        variance = hidden.var(1, keepdim=True, unbiased=False)
    else:
        weights = frame_mask[:, :, None].to(hidden.dtype)
        count = weights.sum(1, keepdim=True).clamp(min=1)
        mean = (hidden * weights).sum(1, keepdim=True) / count
        variance = (((hidden - mean) * weights) ** 2).sum(1, keepdim=True) / count
    return (hidden - mean) * torch.rsqrt(variance + eps)


def replicate_past_end(hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """`(B, T, H)` with each item's padding frames replaced by its last real frame, so that a replicate-padded conv
    sees every item as if it ended at its own length."""
    if frame_mask is None:
        return hidden
    last = (frame_mask.sum(-1) - 1).clamp(min=0)
    ends = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
    return torch.where(frame_mask[:, :, None], hidden, ends[:, None])


def published_positional_row(hidden_size: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """`(H,)`: row 0 of the sinusoidal table, (sin 0, cos 0, ...) = (0, 1, 0, 1, ...): what the published VQ-VAE's
    `PositionalEncoding` adds to every frame (see the module docstring)."""
    row = torch.zeros(hidden_size, device=device, dtype=dtype)
    row[1::2] = 1
    return row


class CodeTalkerVQConvBlock(nn.Module):
    """Conv1d(H, H, 5, replicate padding) + LeakyReLU + instance norm over time (`squasher` / `expander`), masked."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.conv = nn.Conv1d(config.hidden_size, config.hidden_size, 5, stride=1, padding=2, padding_mode="replicate")
        self.negative_slope = config.negative_slope
        self.eps = config.instance_norm_eps

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, T, H)` -> `(B, T, H)`."""
        hidden = self.conv(replicate_past_end(hidden, frame_mask).transpose(1, 2)).transpose(1, 2)
        hidden = F.leaky_relu(hidden, self.negative_slope)
        return masked_instance_norm(hidden, frame_mask, self.eps)


class CodeTalkerVQAttention(nn.Module):
    """Multi-head self-attention with a bias-free `to_qkv` and the published scale `hidden_size ** -0.5`, with SDPA."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.scale = config.hidden_size**-0.5  # the published scale (not head_dim ** -0.5)
        self.to_qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.to_out = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, T, H)` -> `(B, T, H)`; `key_mask` `(B, T)` True on the frames that may be attended to."""
        batch, length, width = hidden.shape
        query, key, value = (
            t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in self.to_qkv(hidden).chunk(3, dim=-1)
        )
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=self.scale)
        return self.to_out(out.transpose(1, 2).reshape(batch, length, width))


class CodeTalkerVQMLP(nn.Module):
    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.l1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.l2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.l2(F.gelu(self.l1(hidden), approximate="tanh"))


class CodeTalkerVQLayer(nn.Module):
    """One pre-LN block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = CodeTalkerVQAttention(config)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CodeTalkerVQMLP(config)

    def forward(self, hidden: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = hidden + self.attention(self.attention_norm(hidden), key_mask)
        return hidden + self.mlp(self.mlp_norm(hidden))


class CodeTalkerVQTransformer(nn.Module):
    """`num_hidden_layers` pre-LN blocks, no final norm, after the published positional encoding and its dropout."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([CodeTalkerVQLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.dropout(hidden + published_positional_row(hidden.shape[-1], hidden.device, hidden.dtype))
        for layer in self.layers:
            hidden = layer(hidden, frame_mask)
        return hidden


class CodeTalkerVQEncoder(nn.Module):
    """Offsets `(B, T, V3)` -> latents `(B, T, n*c)`."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.negative_slope = config.negative_slope
        self.vertice_mapping = nn.Linear(config.vertice_dim, config.hidden_size)
        self.squasher = CodeTalkerVQConvBlock(config)
        self.encoder_linear_embedding = nn.Linear(config.hidden_size, config.hidden_size)
        self.encoder_transformer = CodeTalkerVQTransformer(config)
        self.encoder_linear_embedding_post = (
            nn.Linear(config.hidden_size, config.latent_dim) if config.latent_projection else None
        )

    def forward(self, offsets: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = F.leaky_relu(self.vertice_mapping(offsets), self.negative_slope)
        hidden = self.encoder_linear_embedding(self.squasher(hidden, frame_mask))
        hidden = self.encoder_transformer(hidden, frame_mask)
        if self.encoder_linear_embedding_post is not None:
            hidden = self.encoder_linear_embedding_post(hidden)
        return hidden


class CodeTalkerVQDecoder(nn.Module):
    """Quantised latents `(B, T, n*c)` -> hidden states `(B, T, H)`; `vertice_map_reverse` gives the offsets."""

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.decoder_linear_embedding_pre = (
            nn.Linear(config.latent_dim, config.hidden_size) if config.latent_projection else None
        )
        self.expander = CodeTalkerVQConvBlock(config)
        self.decoder_linear_embedding = nn.Linear(config.hidden_size, config.hidden_size)
        self.decoder_transformer = CodeTalkerVQTransformer(config)
        self.vertice_map_reverse = nn.Linear(config.hidden_size, config.vertice_dim, bias=config.output_bias)

    def forward(self, latents: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        hidden = latents
        if self.decoder_linear_embedding_pre is not None:
            hidden = self.decoder_linear_embedding_pre(hidden)
        hidden = self.decoder_linear_embedding(self.expander(hidden, frame_mask))
        return self.decoder_transformer(hidden, frame_mask)


# ----------------------------------------------------------------------------------------------------------------------
# Quantiser
# ----------------------------------------------------------------------------------------------------------------------


class CodeTalkerVectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of `(B, N, c)` tokens to a `(K, c)` codebook (taming-transformers' quantiser).

    Returns the straight-through codes `z + sg(z_q - z)`, the codebook loss `beta * |sg(z_q) - z|^2 + |z_q - sg(z)|^2`
    (means over the real tokens), the code indices and the perplexity of the codes used.
    """

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__()
        self.commitment_cost = config.commitment_cost
        self.embedding = nn.Embedding(config.num_embeddings, config.code_dim)

    def codes(self, latents: torch.Tensor) -> torch.Tensor:
        """`(B, N, c)` -> `(B, N)` nearest code indices, by the original's |z|^2 + |e|^2 - 2 z.e (same ties)."""
        flat = latents.reshape(-1, latents.shape[-1])
        codebook = self.embedding.weight
        distances = (
            flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * torch.matmul(flat, codebook.t())
        )
        return distances.argmin(1).view(latents.shape[:-1])

    def forward(self, latents: torch.Tensor, token_mask: torch.Tensor | None = None):
        indices = self.codes(latents)
        quantized = self.embedding(indices)
        if token_mask is None:
            commitment = torch.mean((quantized.detach() - latents) ** 2)
            codebook = torch.mean((quantized - latents.detach()) ** 2)
            used = F.one_hot(indices.reshape(-1), self.embedding.num_embeddings).float().mean(0)
        else:
            weights = token_mask[..., None].to(latents.dtype)
            total = weights.sum().clamp(min=1) * latents.shape[-1]
            commitment = (((quantized.detach() - latents) ** 2) * weights).sum() / total
            codebook = (((quantized - latents.detach()) ** 2) * weights).sum() / total
            used = F.one_hot(indices[token_mask], self.embedding.num_embeddings).float().mean(0)
        loss = self.commitment_cost * commitment + codebook
        perplexity = torch.exp(-torch.sum(used * torch.log(used + 1e-10)))
        quantized = latents + (quantized - latents).detach()  # straight-through
        return quantized, loss, indices, perplexity


# ----------------------------------------------------------------------------------------------------------------------
# Stage 1
# ----------------------------------------------------------------------------------------------------------------------


class CodeTalkerVQVAEPreTrainedModel(PreTrainedModel):
    """PyTorch's default initialisations (as the original) and the codebook's U(-1/K, 1/K)."""

    config: CodeTalkerVQVAEConfig
    config_class = CodeTalkerVQVAEConfig
    base_model_prefix = "vqvae"
    main_input_name = "vertices"
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, nn.Embedding):  # the codebook (the VQ-VAE's only embedding)
            init.uniform_(module.weight, -1.0 / module.num_embeddings, 1.0 / module.num_embeddings)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class CodeTalkerVQVAE(CodeTalkerVQVAEPreTrainedModel):
    r"""
    CodeTalker's stage 1: a Transformer VQ-VAE over vertex offsets, trained to reconstruct the motion through a
    discrete codebook (the facial motion prior stage 2 predicts into). No audio.

    vertices - template (B, T, V3) -> `encoder` (Linear + LeakyReLU, conv block, Linear, Transformer, BIWI: Linear)
    -> latents (B, T, n*c) cut into (B, T*n, c) tokens -> `quantize` (nearest of K codes, straight-through) ->
    `decoder` (BIWI: Linear, conv block, Linear, Transformer) -> `vertice_map_reverse` -> + template.

    Batches may be right-padded (`vertex_mask`): each item is encoded and decoded over its own frames only.

    Example:

    ```python
    >>> from modeling_wav2sem import CodeTalkerVQVAE, CodeTalkerVQVAEConfig
    >>> vqvae = CodeTalkerVQVAE(CodeTalkerVQVAEConfig.from_preset("vocaset"))
    >>> out = vqvae(vertices, template)  # out.loss, out.vertices (B, T, 15069), out.code_indices (B, 16 T)
    ```
    """

    def __init__(self, config: CodeTalkerVQVAEConfig):
        super().__init__(config)
        if config.num_hidden_layers < 0:
            raise ValueError("num_hidden_layers must be >= 0.")
        self.encoder = CodeTalkerVQEncoder(config)
        self.decoder = CodeTalkerVQDecoder(config)
        self.quantize = CodeTalkerVectorQuantizer(config)
        self.post_init()

    def tokens(self, per_frame: torch.Tensor) -> torch.Tensor:
        """`(B, T, n*c)` -> `(B, T*n, c)`."""
        return per_frame.reshape(per_frame.shape[0], -1, self.config.code_dim)

    def frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """`(B, T*n, c)` -> `(B, T, n*c)`."""
        return tokens.reshape(tokens.shape[0], -1, self.config.latent_dim)

    def token_mask(self, frame_mask: torch.Tensor | None) -> torch.Tensor | None:
        """`(B, T)` -> `(B, T*n)`."""
        return None if frame_mask is None else frame_mask.repeat_interleave(self.config.tokens_per_frame, dim=1)

    def encode(self, offsets: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Offsets `(B, T, V3)` -> latent tokens `(B, T*n, c)` before quantisation."""
        return self.tokens(self.encoder(offsets, frame_mask))

    def quantize_latents(self, latents: torch.Tensor, frame_mask: torch.Tensor | None = None):
        """Latent tokens `(B, T*n, c)` -> (straight-through codes `(B, T*n, c)`, codebook loss, indices `(B, T*n)`,
        perplexity)."""
        return self.quantize(latents, self.token_mask(frame_mask))

    def decode_hidden(self, quantized: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Codes `(B, T*n, c)` -> the decoder's last hidden states `(B, T, H)`, before `vertice_map_reverse`."""
        return self.decoder(self.frames(quantized), frame_mask)

    def decode(self, quantized: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Codes `(B, T*n, c)` -> offsets from the template `(B, T, V3)`."""
        return self.decoder.vertice_map_reverse(self.decode_hidden(quantized, frame_mask))

    def decode_indices(self, indices: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Code indices `(B, T*n)` -> offsets `(B, T, V3)`."""
        return self.decode(self.quantize.embedding(indices), frame_mask)

    def forward(
        self,
        vertices: torch.Tensor,
        template: torch.Tensor,
        vertex_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> CodeTalkerVQVAEOutput | tuple:
        r"""
        Args:
            vertices (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`): the meshes to reconstruct.
            template (`torch.FloatTensor` of shape `(B, V*3)`, `(B, V, 3)` or `(V*3,)`): each speaker's neutral mesh.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames (right-padded).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        vertices, template, vertex_mask = self._check_inputs(vertices, template, vertex_mask)
        offsets = vertices - template[:, None]
        latents = self.encode(offsets, vertex_mask)
        quantized, codebook_loss, indices, perplexity = self.quantize_latents(latents, vertex_mask)
        reconstruction = self.decode(quantized, vertex_mask) + template[:, None]
        if vertex_mask is None:
            reconstruction_loss = (reconstruction.float() - vertices.float()).abs().mean()
        else:
            weights = vertex_mask[:, :, None].float()
            reconstruction_loss = ((reconstruction.float() - vertices.float()).abs() * weights).sum() / (
                weights.sum() * vertices.shape[-1]
            )
        loss = reconstruction_loss + self.config.quant_loss_weight * codebook_loss
        output = CodeTalkerVQVAEOutput(
            loss=loss,
            vertices=reconstruction,
            vertex_mask=vertex_mask,
            quantized_latents=quantized,
            latents=latents,
            code_indices=indices,
            reconstruction_loss=reconstruction_loss,
            codebook_loss=codebook_loss,
            perplexity=perplexity,
        )
        return output if return_dict else output.to_tuple()

    def _check_inputs(self, vertices, template, vertex_mask):
        vertice_dim = self.config.vertice_dim
        if not torch.is_tensor(vertices) or not torch.is_tensor(template):
            raise ValueError("vertices and template must be torch.Tensors.")
        if vertices.dim() == 4 and vertices.shape[-1] == 3:
            vertices = vertices.flatten(-2)
        if template.shape[-1] == 3 and template.dim() >= 2 and vertice_dim != 3:
            template = template.flatten(-2)
        if template.dim() == 1:
            template = template[None]
        if vertices.dim() != 3 or vertices.shape[-1] != vertice_dim:
            raise ValueError(f"vertices must have shape (B, T, {vertice_dim}), got {tuple(vertices.shape)}.")
        if template.dim() != 2 or template.shape[-1] != vertice_dim:
            raise ValueError(f"template must have shape (B, {vertice_dim}), got {tuple(template.shape)}.")
        if template.shape[0] == 1 and vertices.shape[0] > 1:
            template = template.expand(vertices.shape[0], -1)
        if template.shape[0] != vertices.shape[0]:
            raise ValueError(f"template has batch size {template.shape[0]}, vertices {vertices.shape[0]}.")
        if not bool(torch.isfinite(vertices).all()) or not bool(torch.isfinite(template).all()):
            raise ValueError("vertices or template contain NaN or Inf.")
        if vertex_mask is not None:
            if vertex_mask.shape != vertices.shape[:2]:
                raise ValueError(f"vertex_mask must have shape {tuple(vertices.shape[:2])}, got {tuple(vertex_mask.shape)}.")
            vertex_mask = vertex_mask.bool()
            if bool((vertex_mask[:, 1:] & ~vertex_mask[:, :-1]).any()) or not bool(vertex_mask[:, 0].all()):
                raise ValueError("vertex_mask must be right-padded, with at least one real frame per item.")
            if bool(vertex_mask.all()):
                vertex_mask = None
        return vertices, template.to(vertices.dtype), vertex_mask


# ----------------------------------------------------------------------------------------------------------------------
# Stage 2
# ----------------------------------------------------------------------------------------------------------------------


class FrozenVQVAEMixin:
    """For an animation model that holds a trained CodeTalker stage 1 as `autoencoder` (CodeTalker's predictor,
    LG-LDM's denoiser; its config is `config.vqvae_config`): the stage 1 initialised as the model it is, frozen and
    always in eval mode (as the originals' `autoencoder.eval()`), and `from_audio_encoder(..., vqvae=...)` copying a
    trained one in. Mix in before `AnimationPreTrainedModel`."""

    def initialize_weights(self):
        # The stage-1 model as the model it is (its codebook init), then marked initialised and skipped.
        self.autoencoder.initialize_weights()
        super().initialize_weights()

    def _apply_freezing(self):
        super()._apply_freezing()
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()

    def train(self, mode: bool = True):
        """As `nn.Module.train`; the frozen stage-1 model stays in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @classmethod
    def from_audio_encoder(cls, audio_encoder, dataset: str | None = "vocaset", encoder_kwargs=None, vqvae=None,
                           **config_kwargs):
        """As `AnimationPreTrainedModel.from_audio_encoder`, with the trained stage-1 model `vqvae` (a
        `CodeTalkerVQVAE` or its folder) copied in and frozen; without it, a new (random) stage 1 of the preset."""
        if isinstance(vqvae, str):
            vqvae = CodeTalkerVQVAE.from_pretrained(vqvae)
        if vqvae is not None:
            config_kwargs["vqvae_config"] = CodeTalkerVQVAEConfig.from_dict(vqvae.config.to_dict())
        model = super().from_audio_encoder(audio_encoder, dataset=dataset, encoder_kwargs=encoder_kwargs,
                                           **config_kwargs)
        if vqvae is not None:
            model.autoencoder.load_state_dict(vqvae.state_dict())
            model._apply_freezing()
        return model


class CodeTalkerPreTrainedModel(FrozenVQVAEMixin, AnimationPreTrainedModel):
    """Weight initialisation (PyTorch's defaults, zero `feat_map`; the stage-1 model's own), the frozen stage-1 model
    and the Hub plumbing."""

    config: CodeTalkerConfig
    config_class = CodeTalkerConfig
    base_model_prefix = "codetalker"
    resample_point = "conv"  # CodeTalker resamples the conv features, before the encoder's Transformer layers
    _supports_flash_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if module is getattr(self, "feat_map", None):
            init.zeros_(module.weight)  # the untrained predictor outputs latent zero (the original's init)
            return
        super()._init_weights(module)


class CodeTalkerForAnimation(FaceFormerDecoderMixin, CodeTalkerPreTrainedModel):
    r"""
    CodeTalker's stage 2: speech-driven 3D facial animation as autoregressive prediction in the learnt motion codebook.

    audio (B, L) -> audio encoder (conv features resampled to k frames per vertex frame before its Transformer
    layers) -> `audio_feature_map` Linear(C, d) = memory (B, k*T, d).
    Previous motion (vertices - template) -> `vertice_map` Linear(V3, d) + style `learnable_style_emb` -> periodic
    positional encoding -> Transformer decoder (FaceFormer's biased causal and alignment masks) -> `feat_map`
    Linear(d, n*c), zero-initialised -> latent tokens (B, T*n, c) -> the frozen stage-1 `autoencoder`'s quantiser and
    decoder -> + template.

    Training is teacher-forced; generation is autoregressive, feeding back the last decoded frame. The stage-1 model is
    held as `autoencoder` (frozen, always in eval mode; its config is `config.vqvae_config`), so a saved folder is
    complete. Build one from an audio encoder and a trained stage 1 with `from_audio_encoder(..., vqvae=...)`.

    Example:

    ```python
    >>> from modeling_wav2sem import CodeTalkerForAnimation, CodeTalkerVQVAE
    >>> vqvae = CodeTalkerVQVAE.from_pretrained("path/to/stage1")
    >>> model = CodeTalkerForAnimation.from_audio_encoder("facebook/wav2vec2-base-960h", dataset="vocaset", vqvae=vqvae)
    >>> out = model.eval().predict(audio, template, subject_index=0)  # out.vertices: (1, T, 15069)
    ```
    """

    def __init__(self, config: CodeTalkerConfig, audio_encoder: nn.Module | None = None):
        super().__init__(config)
        self.init_audio_encoder(audio_encoder)

        d = config.feature_dim
        vqvae_config = config.vqvae_config
        self.audio_feature_map = nn.Linear(config.audio_hidden_size, d)
        self.vertice_map = nn.Linear(config.vertice_dim, d)
        self.ppe_dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerDecoderLayer(
            d_model=d,
            nhead=config.num_attention_heads,
            dim_feedforward=config.intermediate_size,
            dropout=config.dropout,
            batch_first=True,
        )
        self.transformer_decoder = nn.TransformerDecoder(layer, num_layers=config.num_hidden_layers)
        self.feat_map = nn.Linear(d, vqvae_config.latent_dim, bias=False)
        self.learnable_style_emb = nn.Embedding(config.num_subjects, d)
        self.autoencoder = CodeTalkerVQVAE(vqvae_config)
        self._mask_cache: dict = {}
        self.post_init()

    # -- decoder pieces: `FaceFormerDecoderMixin` (`_positional`, `biased_mask`, `_decode`) -------------------------

    def _style(self, subject_index, subject_one_hot, batch: int, device, dtype) -> torch.Tensor:
        """Speaker style `(B, 1, d)`: the one-hot's row of `learnable_style_emb` (mixing weights mix the rows, as the
        original's style interpolation)."""
        one_hot = self.style_one_hot(subject_index, subject_one_hot, batch, device, dtype)
        return (one_hot @ self.learnable_style_emb.weight.to(dtype)).unsqueeze(1)

    def _latents(self, hidden: torch.Tensor) -> torch.Tensor:
        """Decoder output `(B, T, d)` -> predicted latent tokens `(B, T*n, c)`."""
        return self.autoencoder.tokens(self.feat_map(hidden))

    # -- autoregressive loops ------------------------------------------------------------------------------------------

    def _autoregress_naive(self, memory: torch.Tensor, style: torch.Tensor, num_frames: int):
        """The original loop: at every step re-run the decoder over the whole prefix, quantise and decode the whole
        predicted latent sequence, and feed back its last frame."""
        autoencoder = self.autoencoder
        embeddings = style
        for i in range(num_frames):
            hidden = self._decode(self._positional(embeddings), memory)
            quantized = autoencoder.quantize(self._latents(hidden))[0]
            if i == 0:  # the original decodes the first frame twice over (a conv over one frame); same result
                decoded = autoencoder.decode(torch.cat([quantized, quantized], dim=1))[:, :1]
            else:
                decoded = autoencoder.decode(quantized)
            if i != num_frames - 1:
                embeddings = torch.cat([embeddings, self.vertice_map(decoded[:, -1:]) + style], dim=1)
        return hidden

    def _autoregress_cached(self, memory: torch.Tensor, style: torch.Tensor, num_frames: int):
        """The same frames, one decoder step per frame: the decoder's self-attention keys/values are kept per layer,
        the cross-attention keys/values of the memory projected once, and each step attends only to its aligned audio
        frame(s) with one row of the temporal bias. Each step's tokens are quantised once; the stage-1 decoder runs
        over the quantised prefix (it is non-causal) and its output layer only on the frame fed back."""
        config = self.config
        autoencoder = self.autoencoder
        decoder = CachedAlignedDecoder(
            self.transformer_decoder, memory, num_frames, config.num_attention_heads, config.period,
            config.audio_frames_per_vertex_frame, self.training,
        )
        table = periodic_positional_encoding(config.period, style.shape[-1], style.device, style.dtype)
        step_input = self.ppe_dropout(style + table[0])
        hiddens, codes = [], []
        for i in range(num_frames):
            hidden = decoder.step(step_input, i)
            hiddens.append(hidden)
            codes.append(autoencoder.quantize(self._latents(hidden))[0])
            if i + 1 < num_frames:
                last = autoencoder.decode_hidden(torch.cat(codes, dim=1))[:, -1:]
                feedback = self.vertice_map(autoencoder.decoder.vertice_map_reverse(last))
                step_input = self.ppe_dropout(feedback + style + table[(i + 1) % config.period])
        return torch.cat(hiddens, 1)

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
        teacher_forcing: bool = True,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
    ) -> CodeTalkerOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L)`): 16 kHz audio as the encoder expects it, right-padded.
            template (`torch.FloatTensor` of shape `(B, V*3)` or `(B, V, 3)`): each speaker's neutral mesh.
            subject_index (`torch.LongTensor` of shape `(B,)`, `int`, `str` or list): the training speaker(s) whose
                style to use, by index in `config.train_subjects` or by name.
            labels (`torch.FloatTensor` of shape `(B, T, V*3)` or `(B, T, V, 3)`, *optional*): ground-truth vertices.
                With them the forward returns the loss; without, it generates (see `predict`).
            attention_mask (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 on real audio samples.
            vertex_mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): 1 on real frames of `labels` (right-padded).
            subject_one_hot (`torch.FloatTensor` of shape `(B, num_subjects)`, *optional*): instead of `subject_index`
                (mixing weights interpolate the styles).
            num_frames (`int` or `torch.LongTensor` of shape `(B,)`, *optional*): frames to generate without `labels`.
            teacher_forcing (`bool`, defaults to `True`): with `labels`, decode in parallel from the ground-truth motion
                shifted by one frame (the original always trains so); `False` runs the autoregressive loop.
            use_cache (`bool`, *optional*): for the autoregressive loop, the cached decoder (default without `labels`)
                or the original's naive loop (default with `labels`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        audio_features, frames, labels, vertex_mask = self.encode_inputs(
            input_values, attention_mask, labels, vertex_mask, num_frames
        )
        batch = input_values.shape[0]
        total = max(frames)

        memory = self.audio_feature_map(audio_features)
        template = self.prepare_template(template, batch, memory.dtype).unsqueeze(1)  # (B, 1, V3)
        style = self._style(subject_index, subject_one_hot, batch, memory.device, memory.dtype)

        if labels is not None and teacher_forcing:
            previous = torch.cat([template, labels[:, :-1].to(memory.dtype)], dim=1) - template
            hidden = self._decode(self._positional(self.vertice_map(previous) + style), memory)
        else:
            if use_cache is None:
                use_cache = labels is None
            loop = self._autoregress_cached if use_cache else self._autoregress_naive
            hidden = loop(memory, style, total)
        latents = self._latents(hidden)
        quantized, _, indices, _ = self.autoencoder.quantize_latents(latents, vertex_mask)
        vertices = self.autoencoder.decode(quantized, vertex_mask) + template

        loss = motion_loss = feature_loss = None
        if labels is not None:
            with torch.no_grad():  # the frozen stage 1's quantised latents of the ground truth
                offsets = labels.to(memory.dtype) - template
                target = self.autoencoder.quantize_latents(self.autoencoder.encode(offsets, vertex_mask), vertex_mask)[0]
            motion_loss = masked_mean_squared_error(vertices, labels, vertex_mask)
            feature_loss = masked_mean_squared_error(
                self.autoencoder.frames(latents), self.autoencoder.frames(target), vertex_mask
            )
            loss = self.config.motion_weight * motion_loss + self.config.reg_weight * feature_loss

        output = CodeTalkerOutput(
            loss=loss,
            vertices=vertices,
            vertex_mask=vertex_mask,
            audio_features=audio_features,
            last_hidden_state=hidden,
            latents=latents,
            code_indices=indices,
            motion_loss=motion_loss,
            feature_loss=feature_loss,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def predict(
        self,
        input_values: torch.Tensor,
        template: torch.Tensor,
        subject_index: torch.Tensor | int | str | list | None = None,
        attention_mask: torch.Tensor | None = None,
        num_frames: int | torch.Tensor | None = None,
        subject_one_hot: torch.Tensor | None = None,
        use_cache: bool = True,
        return_dict: bool | None = None,
    ) -> CodeTalkerOutput | tuple:
        r"""Generate the animation autoregressively (call `.eval()` first, as the original test).

        `use_cache=True` (default) runs the cached decoder; `use_cache=False` the original's naive loop, kept as the
        reference: both give the same vertices. No length limit (the masks are built for any length). Returns
        `vertices` `(B, T, V*3)` and, for a batch of unequal clips, `vertex_mask`.
        """
        return self.forward(
            input_values,
            template,
            subject_index=subject_index,
            attention_mask=attention_mask,
            subject_one_hot=subject_one_hot,
            num_frames=num_frames,
            use_cache=use_cache,
            return_dict=return_dict,
        )

    generate = predict


__all__ = [
    "CodeTalkerForAnimation",
    "CodeTalkerOutput",
    "CodeTalkerPreTrainedModel",
    "CodeTalkerVQVAE",
    "CodeTalkerVQVAEOutput",
    "CodeTalkerVQVAEPreTrainedModel",
    "FrozenVQVAEMixin",
    "masked_instance_norm",
    "published_positional_row",
]
