"""Official checkpoints: key mapping, shape inference, clear errors, and equivalence with transformers' Wav2Vec2Model.

The official encoder is transformers' `Wav2Vec2Model` (group conv norm, post-LN, no SpecAugment) under other key
names, so a random tiny `Wav2Vec2Model` renamed to the official names is a faithful fake official checkpoint.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2Config, Wav2Vec2Model

from modeling_wav2sem import Wav2SemConfig, Wav2SemModel
from modeling_wav2sem.convert_wav2sem_original_checkpoint import (
    BUFFERS,
    convert_official_state_dict,
    infer_config,
    load_official_checkpoint,
    main,
    rename_official_key,
)

TSV = Path(__file__).resolve().parent / "data" / "official-wav2sem-state-dict.tsv"  # keys and shapes of the official checkpoint
OURS_TO_OFFICIAL = {"feature_extractor.": "FeatureExtractor.", "feature_projection.": "FeatureProjection.", "encoder.": "Encoder."}
TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, conv_dim=(32,) * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)


def read_tsv() -> dict[str, tuple[int, ...]]:
    """The official checkpoint's keys -> shapes."""
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line and not line.startswith("#")]
    return {key: tuple(ast.literal_eval(shape)) for key, shape, _ in rows}


def official_state_dict(model: Wav2Vec2Model, prefix: str = "") -> dict:
    """transformers' Wav2Vec2Model weights under the official script's key names (old weight-norm names)."""
    renamed = {}
    for key, value in model.state_dict().items():
        if key == "masked_spec_embed":
            continue
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        for ours, official in OURS_TO_OFFICIAL.items():
            if key.startswith(ours):
                key = official + key[len(ours) :]
        renamed[prefix + key] = value.clone()
    return renamed


def random_wav2vec2(**overrides) -> Wav2Vec2Model:
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        **{**TINY, "feat_extract_norm": "group", **overrides},
        do_stable_layer_norm=False, mask_time_prob=0.0, apply_spec_augment=False,
    )
    model = Wav2Vec2Model(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mapping mistake shows
        for name, param in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    return model


@pytest.fixture(scope="module")
def reference_model():
    return random_wav2vec2()


def assert_same_features(ours: Wav2SemModel, reference: Wav2Vec2Model, samples: int = 8000):
    audio = torch.randn(2, samples, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(audio).last_hidden_state
        got = ours(audio)
    torch.testing.assert_close(got.last_hidden_state, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.semantic_embeds, expected.mean(1), atol=1e-4, rtol=0)  # identity target buffers


def test_fake_checkpoint_follows_the_official_naming(reference_model):
    """The fake has exactly the TSV's keys (restricted to its 2 layers), so the tests exercise the real names."""
    official = {k for k in read_tsv() if not k.startswith("Encoder.layers.") or int(k.split(".")[2]) < 2}
    assert set(official_state_dict(reference_model)) == official


@pytest.mark.parametrize(("prefix", "wrapped"), [("", True), ("module.", True), ("module.", False)])
def test_converted_weights_give_wav2vec2_features(reference_model, tmp_path, prefix, wrapped):
    path = tmp_path / "model.pth.tar"
    state = official_state_dict(reference_model, prefix)
    torch.save({"state_dict": state} if wrapped else state, path)
    ours = load_official_checkpoint(str(path), num_attention_heads=2)
    config = ours.config
    assert (tuple(config.conv_dim), tuple(config.conv_kernel), tuple(config.conv_stride)) == (
        (32,) * 7, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2),
    )
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (32, 2, 48)
    assert (config.num_conv_pos_embeddings, config.num_conv_pos_embedding_groups) == (16, 4)
    assert (config.feat_extract_norm, config.conv_bias, config.do_stable_layer_norm) == ("group", False, False)
    assert not ours.training
    assert_same_features(ours, reference_model)


def test_layer_norm_conv_and_conv_bias_are_inferred():
    reference = random_wav2vec2(feat_extract_norm="layer", conv_bias=True, intermediate_size=40)
    config, state = convert_official_state_dict(official_state_dict(reference), num_attention_heads=2)
    assert (config.feat_extract_norm, config.conv_bias, config.intermediate_size) == ("layer", True, 40)
    ours = Wav2SemModel(config).eval()
    ours.load_state_dict(state, strict=True)
    assert_same_features(ours, reference)


def test_heads_default_to_the_preset(reference_model):
    state = official_state_dict(reference_model)
    config, _ = convert_official_state_dict(state, preset="tiny")
    assert config.num_attention_heads == Wav2SemConfig.from_preset("tiny").num_attention_heads
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):  # paper's 12 heads do not fit 32
        convert_official_state_dict(state)


def test_official_key_list_maps_one_to_one_onto_the_paper_model():
    official = read_tsv()
    ours = {rename_official_key(key): shape for key, shape in official.items()}
    assert len(ours) == len(official)  # no two official keys on one of ours
    with torch.device("meta"):
        paper_model = Wav2SemModel(Wav2SemConfig.from_preset("paper"))
    paper = {k: tuple(v.shape) for k, v in paper_model.state_dict().items()}
    assert set(paper) - set(ours) == set(BUFFERS)
    assert {k: v for k, v in paper.items() if k not in BUFFERS} == ours
    assert sum(torch.Size(s).numel() for s in official.values()) == 94_370_944

    # The architecture inferred from the TSV's shapes alone is the paper preset (meta tensors: nothing allocated).
    fake = {"module." + k: torch.empty(shape, device="meta") for k, shape in official.items()}
    config, state = convert_official_state_dict(fake)
    assert set(state) == set(paper)
    paper_config = Wav2SemConfig.from_preset("paper", target=config.target, teacher_name_or_path=config.teacher_name_or_path)
    assert config.to_dict() == paper_config.to_dict()
    assert infer_config({rename_official_key(k): v for k, v in fake.items()}).to_dict() == paper_config.to_dict()


def test_bad_checkpoints_are_named(reference_model):
    state = official_state_dict(reference_model)
    missing = dict(state)
    missing.pop("Encoder.layers.1.final_layer_norm.bias")
    missing.pop("FeatureExtractor.conv_layers.0.layer_norm.weight")
    with pytest.raises(ValueError, match=r"missing: \['encoder.layers.1.final_layer_norm.bias', 'feature_extractor.conv_layers.0.layer_norm.weight'\]"):
        convert_official_state_dict(missing, num_attention_heads=2)
    wrong = dict(state)
    wrong["Encoder.layer_norm.weight"] = torch.zeros(7)
    with pytest.raises(ValueError, match=r"wrong shapes: encoder.layer_norm.weight \(7,\) \(expected \(32,\)\)"):
        convert_official_state_dict(wrong, num_attention_heads=2)
    with pytest.raises(ValueError, match=r"unexpected: \['Head.bias', 'module.Head.weight'\]"):
        convert_official_state_dict({**state, "module.Head.weight": torch.zeros(1), "Head.bias": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected: \['Encoder.extra.weight -> encoder.extra.weight'\]"):
        convert_official_state_dict({**state, "Encoder.extra.weight": torch.zeros(1)}, num_attention_heads=2)
    no_projection = {k: v for k, v in state.items() if not k.startswith("FeatureProjection.projection.")}
    with pytest.raises(ValueError, match="Cannot infer the architecture: the checkpoint lacks 'feature_projection.projection.weight'"):
        convert_official_state_dict(no_projection, num_attention_heads=2)
    with pytest.raises(ValueError, match="Two checkpoint keys map to 'encoder.layer_norm.bias'"):
        convert_official_state_dict({**state, "module.Encoder.layer_norm.bias": torch.zeros(32)}, num_attention_heads=2)
    with pytest.raises(ValueError, match="not tensors"):
        convert_official_state_dict({**state, "epoch": 3}, num_attention_heads=2)


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pth.tar"
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="neither"):
        main(["--checkpoint", str(path), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_cli_writes_a_loadable_folder(reference_model, tmp_path):
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": official_state_dict(reference_model, "module.")}, path)
    output = tmp_path / "wav2sem-m"
    result = subprocess.run(
        [sys.executable, "-m", "modeling_wav2sem.convert_wav2sem_original_checkpoint", "--checkpoint", str(path), "--output_dir",
         str(output), "--num_attention_heads", "2", "--target", "mean"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Converted" in result.stdout
    files = {p.name for p in output.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_wav2sem.py"} <= files
    assert not any(name.endswith(".bin") for name in files)
    assert json.loads((output / "config.json").read_text())["auto_map"]["AutoModel"].endswith("Wav2SemModel")

    loaded = AutoModel.from_pretrained(output).eval()
    assert isinstance(loaded, Wav2SemModel)
    assert (loaded.config.target, loaded.config.teacher_name_or_path) == ("mean", "bert-base-uncased")
    extractor = AutoFeatureExtractor.from_pretrained(output)
    assert (extractor.sampling_rate, extractor.do_normalize, extractor.return_attention_mask) == (16000, True, True)
    assert_same_features(loaded, reference_model, samples=6000)
