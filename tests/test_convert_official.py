"""Official checkpoints: key mapping, shape inference, clear errors, and equivalence with transformers' Wav2Vec2Model."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2Config, Wav2Vec2Model

from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
from modeling_wav2sem.convert_official import (
    BUFFERS,
    convert_official_state_dict,
    load_official_checkpoint,
    rename_official_key,
)

TSV = Path(__file__).resolve().parent / "data" / "official-wav2sem-state-dict.tsv"  # keys and shapes of the official checkpoint
OURS_TO_OFFICIAL = {"feature_extractor.": "FeatureExtractor.", "feature_projection.": "FeatureProjection.", "encoder.": "Encoder."}


def official_state_dict(model: Wav2Vec2Model, prefix: str = "") -> dict:
    """transformers' Wav2Vec2Model weights under the official script's key names."""
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        for ours, official in OURS_TO_OFFICIAL.items():
            if key.startswith(ours):
                key = official + key[len(ours) :]
        renamed[prefix + key] = value.clone()
    return renamed


@pytest.fixture(scope="module")
def reference_model():
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
        do_stable_layer_norm=False, mask_time_prob=0.0, apply_spec_augment=False,
    )
    model = Wav2Vec2Model(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mapping mistake shows
        for name, param in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    return model


@pytest.mark.parametrize("prefix", ["", "module."])
def test_converted_weights_give_wav2vec2_features(reference_model, tmp_path, prefix):
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": official_state_dict(reference_model, prefix)}, path)
    ours = load_official_checkpoint(str(path), num_attention_heads=2)
    assert ours.config.conv_dim == (32,) * 7 and ours.config.num_conv_pos_embedding_groups == 4
    audio = torch.randn(2, 8000)
    with torch.no_grad():
        expected = reference_model(audio).last_hidden_state
        got = ours(audio).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_official_key_list_maps_one_to_one_onto_the_paper_model():
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line and not line.startswith("#")]
    official = {rename_official_key(key): eval(shape) for key, shape, _ in rows}  # noqa: S307 - shapes like (512, 1, 10)
    with torch.device("meta"):
        paper = {k: tuple(v.shape) for k, v in Wav2SemModel(Wav2SemConfig.from_preset("paper")).state_dict().items()}
    assert set(paper) - set(official) == set(BUFFERS)
    assert {k: v for k, v in paper.items() if k not in BUFFERS} == official
    assert sum(torch.Size(s).numel() for s in official.values()) == 94_370_944


def test_bad_checkpoints_are_named(reference_model):
    state = official_state_dict(reference_model)
    missing = dict(state)
    missing.pop("Encoder.layers.1.final_layer_norm.bias")
    with pytest.raises(ValueError, match="missing: \\['encoder.layers.1.final_layer_norm.bias'\\]"):
        convert_official_state_dict(missing, num_attention_heads=2)
    wrong = dict(state)
    wrong["Encoder.layer_norm.weight"] = torch.zeros(7)
    with pytest.raises(ValueError, match="wrong shapes: encoder.layer_norm.weight"):
        convert_official_state_dict(wrong, num_attention_heads=2)
    with pytest.raises(ValueError, match="Unexpected key"):
        convert_official_state_dict({**state, "Head.weight": torch.zeros(1)}, num_attention_heads=2)


def test_cli_writes_a_loadable_folder(reference_model, tmp_path):
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": official_state_dict(reference_model, "module.")}, path)
    output = tmp_path / "wav2sem-c"
    subprocess.run(
        [sys.executable, "-m", "modeling_wav2sem.convert_official", "--checkpoint", str(path), "--output_dir",
         str(output), "--num_attention_heads", "2"],
        check=True, capture_output=True, timeout=300,
    )
    loaded = AutoModel.from_pretrained(output).eval()
    assert isinstance(loaded, Wav2SemModel) and loaded.config.target == "cls"
    assert AutoFeatureExtractor.from_pretrained(output).return_attention_mask
    audio = torch.randn(1, 6000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio).last_hidden_state, reference_model(audio).last_hidden_state, atol=1e-4, rtol=0)
