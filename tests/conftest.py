"""Shared test settings, tiny audio encoders and small helpers of the animation model tests.

The tests import the constants and functions from here (`from conftest import TINY_BACKBONE, ...`); fixtures are
found by pytest as usual.
"""

import os

# Never let a test wait on the Hugging Face Hub: everything is built and saved locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModel,
    Data2VecAudioConfig,
    HubertConfig,
    Wav2Vec2Config,
    WavLMConfig,
    WhisperConfig,
)

from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedConfig, Wav2SemFusedEncoder, Wav2SemModel  # noqa: E402

# A tiny wav2vec2-family encoder: the standard conv kernels and strides (hop 320, receptive field 400, 50 Hz), 16
# conv channels, hidden size 32, 2 layers.
TINY_BACKBONE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    layerdrop=0.0,
    mask_time_prob=0.0,
)
# A conv stack with layer norm instead of wav2vec2-base's group norm (which normalises over time and so sees padding).
LAYER_NORM_BACKBONE = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
BACKBONES = {
    "hubert": HubertConfig,
    "wav2vec2": Wav2Vec2Config,
    "wavlm": WavLMConfig,
    "data2vec-audio": lambda **kw: Data2VecAudioConfig(**{**kw, "num_conv_pos_embeddings": 5}),
}
# A tiny Whisper (encoder 2 layers, 32 wide; the standard 80 mel bins and 1500 positions = 30 s windows).
TINY_WHISPER = dict(
    d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=37, num_mel_bins=80,
    max_source_positions=1500, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=37, vocab_size=64,
    max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
)
V3 = 20 * 3  # 20 vertices
SUBJECTS = ["s0", "s1", "s2"]


def tiny_audio_config(backbone: str = "wav2vec2", backbone_overrides: dict | None = None):
    """The config of a tiny `backbone` encoder (`"hubert"`, `"wav2vec2"`, `"wavlm"`, `"data2vec-audio"`,
    `"whisper"`, `"whisper-utterance"`: Whisper's encoder seeing only the audio) or, for `"fused"` / `"fused-whisper"`,
    a tiny HuBERT / Whisper backbone fused with a tiny Wav2Sem (FC1 initialised non-zero)."""
    if backbone.startswith("whisper") or backbone == "fused-whisper":
        whisper = WhisperConfig(**{**TINY_WHISPER, **(backbone_overrides or {})})
        whisper.audio_context = "utterance" if backbone == "whisper-utterance" else "window"
        if backbone == "fused-whisper":
            return Wav2SemFusedConfig(
                audio_config=whisper, wav2sem_config=Wav2SemConfig.from_preset("tiny"), fusion_init="normal"
            )
        return whisper
    settings = {**TINY_BACKBONE, **(backbone_overrides or {})}
    if backbone == "fused":
        return Wav2SemFusedConfig(
            audio_config=HubertConfig(**settings),
            wav2sem_config=Wav2SemConfig.from_preset("tiny"),
            fusion_init="normal",
        )
    return BACKBONES[backbone](**settings)


def samples_for_conv_frames(frames: int) -> int:
    """Audio samples that give exactly `frames` 50 Hz conv frames."""
    return 320 * (frames - 1) + 400


def conv_frames_for_samples(samples: int) -> int:
    return (samples - 400) // 320 + 1


def padded_audio(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch of random audio of `lengths` samples and its attention mask."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        values[i, :n] = torch.randn(n, generator=gen)
        mask[i, :n] = 1
    return values, mask


def frames_mask(frames: list[int]) -> torch.Tensor:
    """The `(B, max(frames))` right-padded vertex mask of items with `frames` frames."""
    return torch.arange(max(frames))[None] < torch.tensor(frames)[:, None]


@pytest.fixture(scope="session")
def encoder_dirs(tmp_path_factory):
    """A tiny wav2vec2 backbone and the same backbone fused with a tiny Wav2Sem, each saved as a checkpoint."""
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(1)
    AutoModel.from_config(Wav2Vec2Config(**TINY_BACKBONE)).save_pretrained(root / "backbone")
    torch.manual_seed(2)
    Wav2SemModel(Wav2SemConfig.from_preset("tiny")).save_pretrained(root / "wav2sem")
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(str(root / "backbone"), str(root / "wav2sem"))
    fused.save_pretrained(root / "fused")
    return {"plain": str(root / "backbone"), "fused": str(root / "fused")}
