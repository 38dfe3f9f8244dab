"""The models that benchmarks compare ours against, built from a `Wav2SemConfig`'s geometry."""

import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from modeling_wav2sem import Wav2SemConfig


class OfficialArchitecture(torch.nn.Module):
    """The official training script's model: `Wav2Vec2Model` (group feature norm, post-LN, no SpecAugment) with the
    preset's geometry, mean over frames, and the preset's projection head when the teacher's size differs."""

    def __init__(self, config: Wav2SemConfig):
        super().__init__()
        shared = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
                  "conv_kernel", "conv_stride", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
                  "hidden_act", "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout",
                  "layerdrop", "layer_norm_eps")
        self.encoder = Wav2Vec2Model(Wav2Vec2Config(
            **{name: getattr(config, name) for name in shared}, feat_extract_norm="group", do_stable_layer_norm=False,
            mask_time_prob=0.0, apply_spec_augment=False,
        ))
        size = config.hidden_size
        self.head = torch.nn.Linear(size, config.text_embed_dim) if config.text_embed_dim != size else torch.nn.Identity()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(values).last_hidden_state.mean(1))
