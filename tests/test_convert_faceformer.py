"""Checkpoints published with FaceFormer (vocaset.pth, biwi.pth): key mapping, shape inference, clear errors, and the
same predictions after conversion and reloading.

The published file is the plain `state_dict()` of the original `Faceformer` module, whose names ours follow; it differs
by the old weight-norm names of the encoder's positional conv (transformers 4.6 / torch 1.9) and by the buffer of the
periodic positional encoding, `PPE.pe`. `published_state_dict` writes a tiny model of ours in that layout.
"""

import json
import math

import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2Config

import modeling_wav2sem  # noqa: F401  (registers the model types with AutoModel)
from modeling_wav2sem.configuration_faceformer import FaceFormerConfig
from modeling_wav2sem.convert_faceformer_original_checkpoint import (
    convert_published_state_dict,
    load_published_checkpoint,
    main,
)
from modeling_wav2sem.modeling_faceformer import FaceFormerForAnimation

TINY_BACKBONE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=37,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    layerdrop=0.0,
)
V3 = 8 * 3
D = 16
SUBJECTS = ["s0", "s1", "s2"]
NEW_WEIGHT_NORM = "parametrizations.weight.original"  # -> weight_g / weight_v (torch.nn.utils.weight_norm)


def tiny_model(dataset: str, seed: int = 0) -> FaceFormerForAnimation:
    """A tiny random FaceFormer of ours with a non-zero output layer; for BIWI, conv frames cropped as published."""
    torch.manual_seed(seed)
    config = FaceFormerConfig(
        audio_config=Wav2Vec2Config(**TINY_BACKBONE), dataset=dataset, vertice_dim=V3, feature_dim=D,
        train_subjects=SUBJECTS, audio_resampling="truncate" if dataset == "biwi" else "interpolate",
    )
    model = FaceFormerForAnimation(config)
    with torch.no_grad():
        model.vertice_map_r.weight.normal_(0, 0.1)
        model.vertice_map_r.bias.normal_(0, 0.1)
    return model.eval()


def original_positional_encoding(period: int, dim: int, max_seq_len: int = 600) -> torch.Tensor:
    """The published `PPE.pe` buffer: sinusoids of positions 0..period-1, tiled to period * (max_seq_len // period + 1).
    """
    position = torch.arange(period, dtype=torch.float)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    table = torch.zeros(period, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.repeat(max_seq_len // period + 1, 1)[None]


def published_state_dict(model: FaceFormerForAnimation) -> dict[str, torch.Tensor]:
    """What the original's `torch.save(model.state_dict(), ...)` holds for the same weights."""
    state_dict = {}
    for key, value in model.state_dict().items():
        key = key.replace(NEW_WEIGHT_NORM + "0", "weight_g").replace(NEW_WEIGHT_NORM + "1", "weight_v")
        state_dict[key] = value.clone()
    state_dict["PPE.pe"] = original_positional_encoding(model.config.period, model.config.feature_dim)
    return state_dict


def audio(samples: int = 16000, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, samples, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def vocaset_model():
    return tiny_model("vocaset")


def test_published_layout_has_the_old_names(vocaset_model):
    keys = set(published_state_dict(vocaset_model))
    assert "audio_encoder.encoder.pos_conv_embed.conv.weight_g" in keys
    assert "audio_encoder.encoder.pos_conv_embed.conv.weight_v" in keys
    assert not any("parametrizations" in k for k in keys)
    assert {"PPE.pe", "obj_vector.weight", "vertice_map_r.bias", "audio_encoder.masked_spec_embed"} <= keys


@pytest.mark.parametrize("dataset", ["vocaset", "biwi"])
def test_convert_save_reload_predicts_the_same(tmp_path, dataset):
    source = tiny_model(dataset, seed=1)
    path = tmp_path / f"{dataset}.pth"
    torch.save(published_state_dict(source), path)
    model = load_published_checkpoint(str(path), Wav2Vec2Config(**TINY_BACKBONE), dataset.upper(), SUBJECTS)
    assert model.config.audio_resampling == ("truncate" if dataset == "biwi" else "interpolate")
    assert (model.config.vertice_dim, model.config.feature_dim, model.config.num_subjects) == (V3, D, 3)
    model.save_pretrained(tmp_path / "out")
    reloaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert type(reloaded).__name__ == "FaceFormerForAnimation"

    template = torch.randn(1, V3, generator=torch.Generator().manual_seed(2))
    wav = audio(16000)  # 49 conv frames, an odd count: BIWI crops them to 48, VOCASET interpolates them to 29
    got = reloaded.predict(wav, template, subject_index=1).vertices
    expected = source.predict(wav, template, subject_index=1).vertices
    assert got.shape == expected.shape == (1, 24 if dataset == "biwi" else 29, V3)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_cli_writes_the_model_and_the_default_feature_extractor(tmp_path, vocaset_model, capsys):
    encoder_dir = tmp_path / "encoder"
    Wav2Vec2Config(**TINY_BACKBONE).save_pretrained(encoder_dir)  # a config only: the weights are in the checkpoint
    torch.save(published_state_dict(vocaset_model), tmp_path / "vocaset.pth")
    main([
        "--checkpoint", str(tmp_path / "vocaset.pth"), "--dataset", "vocaset", "--output_dir", str(tmp_path / "out"),
        "--audio_encoder", str(encoder_dir), "--train_subjects", *SUBJECTS,
    ])
    assert "vertice_dim=24" in capsys.readouterr().out
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["train_subjects"] == SUBJECTS and config["dataset"] == "vocaset" and "auto_map" in config
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "out")  # wav2vec2-base-960h's, masks on for batches
    assert (type(extractor).__name__, extractor.sampling_rate, extractor.do_normalize) == (
        "Wav2Vec2FeatureExtractor", 16000, True
    )
    reloaded = AutoModel.from_pretrained(tmp_path / "out").eval()
    template = torch.zeros(1, V3)
    torch.testing.assert_close(
        reloaded.predict(audio(), template, subject_index=2).vertices,
        vocaset_model.predict(audio(), template, subject_index=2).vertices,
        rtol=0, atol=0,
    )


def convert(state_dict, dataset="vocaset", subjects=SUBJECTS):
    return convert_published_state_dict(state_dict, Wav2Vec2Config(**TINY_BACKBONE), dataset, subjects)


@pytest.mark.parametrize(
    "key",
    [
        "transformer_decoder.layers.0.norm2.weight",
        "audio_encoder.encoder.pos_conv_embed.conv.weight_g",
        "obj_vector.weight",
    ],
)
def test_missing_key_is_named(vocaset_model, key):
    state_dict = published_state_dict(vocaset_model)
    del state_dict[key]
    expected = key.replace("weight_g", "parametrizations.weight.original0")
    with pytest.raises(ValueError, match="missing|lacks") as error:
        convert(state_dict)
    assert expected in str(error.value)


def test_unexpected_key_is_named(vocaset_model):
    state_dict = published_state_dict(vocaset_model)
    state_dict["transformer_decoder.layers.1.norm1.weight"] = torch.ones(D)
    with pytest.raises(ValueError, match=r"unexpected: \['transformer_decoder.layers.1.norm1.weight'\]"):
        convert(state_dict)


@pytest.mark.parametrize(
    "key, shape",
    [("audio_encoder.encoder.layers.0.attention.q_proj.weight", (32, 31)), ("vertice_map.bias", (D + 1,))],
)
def test_wrong_shape_is_named(vocaset_model, key, shape):
    state_dict = published_state_dict(vocaset_model)
    state_dict[key] = torch.zeros(shape)
    with pytest.raises(ValueError, match="wrong shapes") as error:
        convert(state_dict)
    assert f"{key} {shape}" in str(error.value)


def test_inconsistent_dimensions_and_speakers(vocaset_model):
    state_dict = published_state_dict(vocaset_model)
    with pytest.raises(ValueError, match="obj_vector.weight has 3 columns"):
        convert(state_dict, subjects=["a", "b"])
    with pytest.raises(ValueError, match="obj_vector.weight has 3 columns .* preset has 8"):
        convert(state_dict, subjects=None)  # the VOCASET preset's eight speakers
    state_dict["vertice_map.weight"] = torch.zeros(D, V3 + 3)
    with pytest.raises(ValueError, match=r"vertice_map.weight \(16, 27\) \(expected \(16, 24\)\)"):
        convert(state_dict)


def test_positional_encoding_of_another_period_is_rejected(vocaset_model):
    state_dict = published_state_dict(vocaset_model)
    state_dict["PPE.pe"] = original_positional_encoding(25, D)  # BIWI's period under the VOCASET preset
    with pytest.raises(ValueError, match="PPE.pe is not the periodic positional encoding with period 30"):
        convert(state_dict)


def test_temporal_bias_is_checked_when_present(vocaset_model):
    from modeling_wav2sem.modeling_faceformer import biased_causal_mask

    state_dict = published_state_dict(vocaset_model)
    state_dict["biased_mask"] = biased_causal_mask(4, 60, 30)
    config, converted = convert(state_dict)
    assert "biased_mask" not in converted and "PPE.pe" not in converted
    state_dict["biased_mask"] = biased_causal_mask(4, 60, 25)
    with pytest.raises(ValueError, match="biased_mask is not the temporal bias"):
        convert(state_dict)


def test_only_wav2vec2_encoders_and_known_datasets(vocaset_model):
    from transformers import HubertConfig

    state_dict = published_state_dict(vocaset_model)
    with pytest.raises(ValueError, match="'hubert'"):
        convert_published_state_dict(state_dict, HubertConfig(**TINY_BACKBONE), "vocaset", SUBJECTS)
    with pytest.raises(ValueError, match="audio_feature_map.weight takes 32 features .* hidden_size 48"):
        convert_published_state_dict(state_dict, Wav2Vec2Config(**{**TINY_BACKBONE, "hidden_size": 48}), "vocaset")
    with pytest.raises(ValueError, match="dataset must be one of"):
        convert(state_dict, dataset="multiface")
