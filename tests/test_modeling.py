"""Behaviour of Wav2SemModel and Wav2SemFusedEncoder that users depend on (tiny configs, CPU, fp32)."""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    Data2VecAudioConfig,
    HubertConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
)

from modeling_wav2sem import (
    WAV2SEM_PRESETS,
    Wav2SemConfig,
    Wav2SemFusedConfig,
    Wav2SemFusedEncoder,
    Wav2SemModel,
)

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
BACKBONES = {
    "hubert": (HubertConfig, {}),
    "wav2vec2": (Wav2Vec2Config, {}),
    "wavlm": (WavLMConfig, {}),
    "data2vec-audio": (Data2VecAudioConfig, {"num_conv_pos_embeddings": 5}),
}
LENGTHS = (6000, 3700, 400)  # the last one is exactly the receptive field


def padded_batch(lengths, seed=0):
    """Right-padded random audio `(B, max(lengths))` and its attention mask."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        values[i, :n] = torch.randn(n, generator=gen)
        mask[i, :n] = 1
    return values, mask


def tiny_wav2sem(**overrides):
    torch.manual_seed(0)
    return Wav2SemModel(Wav2SemConfig.from_preset("tiny", **overrides)).eval()


@pytest.fixture(scope="module")
def wav2sem_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wav2sem")
    tiny_wav2sem(text_embed_dim=24).save_pretrained(folder)  # writes preprocessor_config.json itself
    return str(folder)


def save_backbone(folder, name, **overrides):
    config_class, extra = BACKBONES[name]
    torch.manual_seed(1)
    model = AutoModel.from_config(config_class(**{**TINY_BACKBONE, **extra, **overrides}))
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return str(folder)


def save_raw_audio_backbone(folder):
    """A HuBERT-base-style checkpoint: its extractor keeps the raw audio (no normalisation) and gives no mask."""
    backbone_dir = save_backbone(folder, "hubert")
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False).save_pretrained(backbone_dir)
    return backbone_dir


# ---------------------------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------------------------


def test_paper_preset_is_the_official_architecture():
    config = Wav2SemConfig.from_preset("paper")
    with torch.device("meta"):
        model = Wav2SemModel(config)
    assert sum(p.numel() for p in model.parameters()) == 94_370_944
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert model.projection_head is None and not config.do_stable_layer_norm


@pytest.mark.parametrize("name", sorted(WAV2SEM_PRESETS))
def test_presets_keep_hop_and_receptive_field(name):
    config = Wav2SemConfig.from_preset(name)
    assert config.inputs_to_logits_ratio == 320 and config.receptive_field == 400


def test_small_matches_minilm_and_tiny_is_tiny():
    assert Wav2SemConfig.from_preset("small").hidden_size == 384
    assert sum(p.numel() for p in tiny_wav2sem().parameters()) < 1_000_000


def test_preset_overrides_and_errors():
    config = Wav2SemConfig.from_preset("tiny", target="mean", text_embed_dim=48)
    assert config.target == "mean" and tiny_wav2sem(text_embed_dim=48).projection_head.out_features == 48
    with pytest.raises(ValueError, match="Unknown Wav2Sem preset"):
        Wav2SemConfig.from_preset("huge")
    with pytest.raises(ValueError, match="target"):
        Wav2SemConfig(target="max")


# ---------------------------------------------------------------------------------------------------------------------
# Wav2SemModel
# ---------------------------------------------------------------------------------------------------------------------


def test_outputs_shapes_and_return_dict():
    model = tiny_wav2sem(text_embed_dim=24)
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        out = model(values, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        as_tuple = model(values, attention_mask=mask, return_dict=False)
    frames = model._get_feat_extract_output_lengths(max(LENGTHS))
    assert out.last_hidden_state.shape == (3, frames, 32)
    assert out.semantic_embeds.shape == (3, 24)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (3, 2, frames, frames)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[1], out.semantic_embeds)  # eager (weights asked for) vs SDPA


@pytest.mark.parametrize(
    "overrides",
    [{}, {"feat_extract_norm": "layer"}, {"do_stable_layer_norm": True}],
    ids=["group-norm-post-ln", "layer-norm", "pre-ln"],
)
def test_batching_does_not_change_results(overrides):
    """An utterance's F_s alone and inside a right-padded batch agree to 1e-4 (fp32)."""
    model = tiny_wav2sem(**overrides)
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        batched = model(values, attention_mask=mask)
        for i, n in enumerate(LENGTHS):
            alone = model(values[i : i + 1, :n])
            frames = alone.last_hidden_state.shape[1]
            torch.testing.assert_close(batched.semantic_embeds[i : i + 1], alone.semantic_embeds, atol=1e-4, rtol=0)
            torch.testing.assert_close(
                batched.last_hidden_state[i : i + 1, :frames], alone.last_hidden_state, atol=1e-4, rtol=0
            )


def test_padding_leaks_without_masking():
    """The masking matters: without it the group norm and positional conv see the padding."""
    model = tiny_wav2sem()
    values, mask = padded_batch((6000, 3000))
    with torch.no_grad():
        alone = model(values[1:, :3000]).semantic_embeds
        unmasked = model(values).semantic_embeds[1:]
    assert (alone - unmasked).abs().max() > 1e-3


def test_target_statistics_are_folded_in():
    model = tiny_wav2sem()
    values, _ = padded_batch((4000,))
    mean, std = torch.linspace(-1, 1, 32), torch.linspace(0.5, 2, 32)
    model.set_target_statistics(mean, std)
    with torch.no_grad():
        out = model(values)
    torch.testing.assert_close(out.semantic_embeds, out.standardized_embeds * std + mean)
    with pytest.raises(ValueError, match="positive"):
        model.set_target_statistics(mean, -std)


def test_gradient_checkpointing_gives_same_gradients():
    model = tiny_wav2sem(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0)
    values, mask = padded_batch((5000, 3000))
    feed_forward_calls = []
    model.encoder.layers[0].feed_forward.register_forward_hook(lambda *_: feed_forward_calls.append(1))

    def grads():
        feed_forward_calls.clear()
        model.zero_grad()
        model(values, attention_mask=mask).semantic_embeds.square().sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    reference = grads()
    assert len(feed_forward_calls) == 1
    model.activation_checkpointing_enable()
    checkpointed = grads()
    assert len(feed_forward_calls) == 2  # the layer really is recomputed in the backward pass
    assert reference.keys() == checkpointed.keys() and len(reference) > 10
    for name in reference:
        torch.testing.assert_close(checkpointed[name], reference[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("values", "mask", "message"),
    [
        (torch.zeros(1, 0), None, "empty"),
        (torch.zeros(0, 1000), None, "empty batch"),
        (torch.zeros(1, 1000), [[1] * 1000], "attention_mask must be a torch.Tensor"),
        (torch.zeros(1, 399), None, "too short"),
        (torch.zeros(2, 1000, 2), None, "mono"),
        (torch.zeros(1000), None, "batch, samples"),
        (torch.tensor([[0.0] * 999 + [float("nan")]]), None, "NaN"),
        (torch.tensor([[0.0] * 999 + [float("inf")]]), None, "NaN or Inf"),
        (torch.zeros(2, 1000), torch.ones(2, 999, dtype=torch.long), "shape"),
        (torch.zeros(2, 1000), torch.cat([torch.ones(2, 500), torch.zeros(2, 500)], 1).long()[:, [*range(500, 1000), *range(500)]], "right-padded"),
        (torch.zeros(2, 1000), torch.cat([torch.ones(1, 1000), torch.cat([torch.ones(1, 300), torch.zeros(1, 700)], 1)]).long(), "too short"),
    ],
    ids=["empty", "empty-batch", "list-mask", "short", "stereo", "1-d", "nan", "inf", "mask-shape", "left-padded", "short-in-batch"],
)
def test_bad_input_gives_clear_value_error(values, mask, message):
    with pytest.raises(ValueError, match=message):
        tiny_wav2sem()(values, attention_mask=mask)


# ---------------------------------------------------------------------------------------------------------------------
# Auto classes, Hub checkpoints, remote code
# ---------------------------------------------------------------------------------------------------------------------


def test_auto_round_trip_with_package(wav2sem_dir):
    files = set(os.listdir(wav2sem_dir))
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= files
    assert {"modeling_wav2sem.py", "configuration_wav2sem.py"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    auto_map = json.load(open(os.path.join(wav2sem_dir, "config.json")))["auto_map"]
    assert auto_map == {"AutoConfig": "configuration_wav2sem.Wav2SemConfig", "AutoModel": "modeling_wav2sem.Wav2SemModel"}
    assert isinstance(AutoConfig.from_pretrained(wav2sem_dir), Wav2SemConfig)
    assert isinstance(AutoFeatureExtractor.from_pretrained(wav2sem_dir), Wav2Vec2FeatureExtractor)
    loaded = AutoModel.from_pretrained(wav2sem_dir).eval()
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(values, attention_mask=mask).semantic_embeds,
            tiny_wav2sem(text_embed_dim=24)(values, attention_mask=mask).semantic_embeds,
        )


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_wav2sem"] = None  # the package is not importable in this process
    import torch
    from transformers import AutoConfig, AutoModel
    folder, fused_folder = sys.argv[1], sys.argv[2]
    try:
        AutoModel.from_pretrained(folder)
    except ValueError as error:
        assert "trust_remote_code" in str(error), error
    else:
        raise AssertionError("loading custom code without trust_remote_code should be refused")
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    fused = AutoModel.from_pretrained(fused_folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    torch.manual_seed(0)
    values = torch.randn(2, 4000)
    with torch.no_grad():
        print("SUMS", model(values).semantic_embeds.sum().item(), fused(values).last_hidden_state.sum().item())
    """
)


def test_remote_code_in_fresh_process(wav2sem_dir, tmp_path):
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(save_backbone(tmp_path / "bb", "hubert"), wav2sem_dir)
    fused.save_pretrained(tmp_path / "fused")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_CODE_SCRIPT, wav2sem_dir, str(tmp_path / "fused")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote_sum, remote_fused_sum = map(float, result.stdout.split("SUMS")[1].split())
    torch.manual_seed(0)
    values = torch.randn(2, 4000)
    with torch.no_grad():
        local = AutoModel.from_pretrained(wav2sem_dir).eval()(values).semantic_embeds.sum().item()
        local_fused = AutoModel.from_pretrained(tmp_path / "fused").eval()(values).last_hidden_state.sum().item()
    assert remote_sum == pytest.approx(local, abs=1e-4)
    assert remote_fused_sum == pytest.approx(local_fused, abs=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# Wav2SemFusedEncoder
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_fused_encoder_over_real_backbone_types(backbone, wav2sem_dir, tmp_path):
    backbone_dir = save_backbone(tmp_path / "bb", backbone)
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir, fusion_init="normal")
    values, mask = padded_batch(LENGTHS)
    fused.train()
    assert fused.backbone.training and not fused.wav2sem.training
    assert not any(p.requires_grad for p in fused.wav2sem.parameters())

    out = fused(values, attention_mask=mask, output_hidden_states=True)
    frames = fused._get_feat_extract_output_lengths(max(LENGTHS))
    assert out.last_hidden_state.shape == out.backbone_hidden_state.shape == (3, frames, 32)
    assert out.semantic_embeds.shape == (3, 24)
    assert len(out.hidden_states) == 3  # the backbone's
    out.last_hidden_state.sum().backward()
    assert fused.fc1.weight.grad is not None and fused.fc1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in fused.wav2sem.parameters())

    # F_d = FC1(F_s) + F_p, frame by frame, for every item of the batch (FC2 is the identity).
    expected = fused.fc1(out.semantic_embeds)[:, None, :] + out.backbone_hidden_state
    torch.testing.assert_close(out.last_hidden_state, expected)

    fused.save_pretrained(tmp_path / "fused")
    reloaded = AutoModel.from_pretrained(tmp_path / "fused")
    assert isinstance(reloaded, Wav2SemFusedEncoder)
    assert reloaded.config.audio_config.model_type == AutoConfig.from_pretrained(backbone_dir).model_type
    assert not any(p.requires_grad for p in reloaded.wav2sem.parameters())
    fused.eval(), reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(values, attention_mask=mask)[0], fused(values, attention_mask=mask)[0])


def test_fused_semantic_embeds_are_batch_invariant_and_normalised(wav2sem_dir, tmp_path):
    """F_s inside the fused encoder is padding-exact and independent of the audio's scale (it is normalised)."""
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(save_backbone(tmp_path, "hubert"), wav2sem_dir).eval()
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        batched = fused(values, attention_mask=mask).semantic_embeds
        for i, n in enumerate(LENGTHS):
            alone = fused(values[i : i + 1, :n] * 3.0 + 0.5).semantic_embeds
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-4, rtol=0)


def fused_and_its_float_output(wav2sem_dir, tmp_path):
    """A fused encoder in eval mode, a padded batch and the fused encoder's fp32 output on it."""
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(
        save_backbone(tmp_path, "hubert"), wav2sem_dir, fusion_init="normal"
    ).eval()
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        reference = fused(values, attention_mask=mask)
    return fused, values, mask, reference


def assert_f_s_kept_and_the_backbone_trains(fused, values, mask, reference):
    """In training mode, F_s stays close to the fp32 `reference`, and the backbone and FC1 get gradients."""
    out = fused.train()(values, attention_mask=mask)
    cosine = torch.nn.functional.cosine_similarity(out.semantic_embeds, reference.semantic_embeds)
    assert bool((cosine > 0.99).all()), cosine
    out.last_hidden_state.sum().backward()
    assert fused.fc1.weight.grad is not None and fused.backbone.encoder.layers[0].attention.q_proj.weight.grad is not None
    return out


def test_int8_wav2sem_in_a_fused_encoder_keeps_f_s_and_the_backbone_trains(wav2sem_dir, tmp_path):
    fused, values, mask, reference = fused_and_its_float_output(wav2sem_dir, tmp_path)
    with pytest.raises(ValueError, match="eval"):
        copy.deepcopy(fused.wav2sem).train().quantize_int8()
    assert fused.quantize_wav2sem_int8() is fused and fused.wav2sem.is_int8_quantized
    assert fused.quantize_wav2sem_int8() is fused  # a second call changes nothing
    with pytest.raises(ValueError, match="fp32 weights"):
        copy.deepcopy(tiny_wav2sem()).to(torch.bfloat16).quantize_int8()
    assert isinstance(fused.wav2sem.encoder.layers[0].attention.q_proj, torch.ao.nn.quantized.dynamic.Linear)
    assert_f_s_kept_and_the_backbone_trains(fused, values, mask, reference)  # int8 layers: F_s close to the float one
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # int8 layers run in fp32 under autocast
        autocast = fused.wav2sem(values, attention_mask=mask).semantic_embeds
    torch.testing.assert_close(autocast, fused.wav2sem(values, attention_mask=mask).semantic_embeds)
    with pytest.raises(ValueError, match="save the float model"):
        fused.save_pretrained(tmp_path / "int8")


def test_bf16_wav2sem_in_an_fp32_fused_encoder_keeps_f_s_and_the_backbone_trains(wav2sem_dir, tmp_path):
    """The frozen Wav2Sem cast to bf16 (no per-call weight casts on fast-bf16 CPUs) inside an fp32 fused encoder: F_s
    stays fp32 and close to the fp32 one, F_d is fp32, and the backbone and FC1 still get gradients."""
    fused, values, mask, reference = fused_and_its_float_output(wav2sem_dir, tmp_path)
    fused.wav2sem.to(torch.bfloat16)
    out = assert_f_s_kept_and_the_backbone_trains(fused, values, mask, reference)
    assert out.semantic_embeds.dtype == out.last_hidden_state.dtype == torch.float32
    assert all(p.grad is None for p in fused.wav2sem.parameters())


def test_fused_output_is_batch_invariant_with_layer_norm_backbone(wav2sem_dir, tmp_path):
    backbone_dir = save_backbone(tmp_path, "wav2vec2", feat_extract_norm="layer", do_stable_layer_norm=True)
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir, fusion_init="normal").eval()
    values, mask = padded_batch(LENGTHS)
    with torch.no_grad():
        batched = fused(values, attention_mask=mask).last_hidden_state
        for i, n in enumerate(LENGTHS):
            alone = fused(values[i : i + 1, :n]).last_hidden_state
            torch.testing.assert_close(batched[i : i + 1, : alone.shape[1]], alone, atol=1e-4, rtol=0)


def test_fused_starts_at_backbone_features_and_fc2(wav2sem_dir, tmp_path):
    backbone_dir = save_backbone(tmp_path, "hubert")
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir).eval()
    values, _ = padded_batch((4000,))
    with torch.no_grad():
        out = fused(values)
        plain = AutoModel.from_pretrained(backbone_dir).eval()(values).last_hidden_state
    torch.testing.assert_close(out.last_hidden_state, plain)  # zero-initialised FC1
    projected = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir, output_dim=12)
    assert projected(values).last_hidden_state.shape[-1] == 12 == projected.config.hidden_size


def test_fused_gradient_checkpointing_gives_same_gradients(wav2sem_dir, tmp_path):
    backbone_dir = save_backbone(
        tmp_path, "wav2vec2", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
        mask_time_prob=0.0, feat_proj_dropout=0.0,
    )
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir, fusion_init="normal").train()
    values, mask = padded_batch((5000, 3000))

    def grads():
        fused.zero_grad()
        fused(values, attention_mask=mask).last_hidden_state.square().sum().backward()
        return {n: p.grad.clone() for n, p in fused.named_parameters() if p.grad is not None}

    reference = grads()
    fused.activation_checkpointing_enable()
    assert fused.backbone.is_activation_checkpointing
    checkpointed = grads()
    assert reference.keys() == checkpointed.keys() and "fc1.weight" in reference
    for name in reference:
        torch.testing.assert_close(checkpointed[name], reference[name], atol=1e-6, rtol=1e-5)


def test_freeze_backbone_feature_encoder(wav2sem_dir, tmp_path):
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(save_backbone(tmp_path, "hubert"), wav2sem_dir)
    fused.freeze_feature_encoder()
    assert not any(p.requires_grad for p in fused.backbone.feature_extractor.parameters())
    assert all(p.requires_grad for p in fused.backbone.encoder.parameters())


def test_default_fused_config_and_rate_mismatches(wav2sem_dir, tmp_path):
    config = Wav2SemFusedConfig()
    assert config.audio_config.model_type == "hubert" and config.wav2sem_config.model_type == "wav2sem"
    with pytest.raises(ValueError, match="Frame rates differ"):
        Wav2SemFusedEncoder(
            Wav2SemFusedConfig(
                audio_config=HubertConfig(**{**TINY_BACKBONE, "conv_stride": (5, 2, 2, 2, 2, 2, 1)}),
                wav2sem_config=Wav2SemConfig.from_preset("tiny"),
            )
        )
    backbone_dir = save_backbone(tmp_path, "hubert")
    Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(backbone_dir)
    with pytest.raises(ValueError, match="Sampling rates differ"):
        Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir)


def test_fused_rejects_bad_input(wav2sem_dir, tmp_path):
    fused = Wav2SemFusedEncoder.from_backbone_and_wav2sem(save_backbone(tmp_path, "hubert"), wav2sem_dir)
    with pytest.raises(ValueError, match="mono"):
        fused(torch.zeros(1, 2, 4000))
    with pytest.raises(ValueError, match="too short"):
        fused(torch.zeros(1, 100))


def test_fused_checkpoint_keeps_the_backbones_feature_extractor(wav2sem_dir, tmp_path):
    """A HuBERT-base-style backbone takes raw, unmasked audio (do_normalize=False, no attention mask): the fused
    checkpoint keeps that for the backbone, also after a from_pretrained -> save_pretrained cycle, while its extractor
    returns the mask Wav2Sem needs; a backbone without one gets a normalising default."""
    backbone_dir = save_raw_audio_backbone(tmp_path / "backbone")
    Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir).save_pretrained(tmp_path / "fused")
    Wav2SemFusedEncoder.from_pretrained(tmp_path / "fused").save_pretrained(tmp_path / "again")
    for folder in ("fused", "again"):
        extractor = AutoFeatureExtractor.from_pretrained(tmp_path / folder)
        assert (extractor.do_normalize, extractor.return_attention_mask) == (False, True)
        assert AutoConfig.from_pretrained(tmp_path / folder).backbone_attention_mask is False

    bare = AutoModel.from_config(HubertConfig(**TINY_BACKBONE))  # a model, not a checkpoint: no extractor
    Wav2SemFusedEncoder.from_backbone_and_wav2sem(bare, wav2sem_dir).save_pretrained(tmp_path / "bare")
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "bare")
    assert extractor.do_normalize and extractor.return_attention_mask and extractor.sampling_rate == 16000


def test_fused_extractor_batches_keep_f_s_exact_and_the_backbone_unmasked(wav2sem_dir, tmp_path):
    """Through the fused checkpoint's own extractor, a padded batch gives each utterance its F_s alone; a group-norm
    backbone whose extractor gives no mask is called without one, as it would be on its own."""
    backbone_dir = save_raw_audio_backbone(tmp_path / "backbone")
    Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir).save_pretrained(tmp_path / "fused")
    fused = AutoModel.from_pretrained(tmp_path / "fused").eval()
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path / "fused")
    backbone_masks = []
    fused.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: backbone_masks.append(kwargs.get("attention_mask")), with_kwargs=True
    )
    waves = [padded_batch((n,), seed=i)[0][0].numpy() for i, n in enumerate(LENGTHS)]
    batch = extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        batched = fused(**batch).semantic_embeds
        for i, wave in enumerate(waves):
            alone = fused(**extractor(wave, sampling_rate=16000, return_tensors="pt")).semantic_embeds
            torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-4, rtol=0)
    assert backbone_masks and all(mask is None for mask in backbone_masks)


def test_save_pretrained_pushes_the_feature_extractor_too(tmp_path, monkeypatch):
    import types

    import transformers.modeling_utils
    import transformers.utils.hub

    committed = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            return types.SimpleNamespace(repo_id=repo_id)

        def create_commit(self, operations, **kwargs):
            committed.extend(op.path_in_repo for op in operations)

    class FakeCard:
        def save(self, path):
            open(path, "w").write("card")

    for module in (transformers.modeling_utils, transformers.utils.hub):
        monkeypatch.setattr(module, "hf_api", FakeApi)
    monkeypatch.setattr(transformers.modeling_utils, "create_and_tag_model_card", lambda *args, **kwargs: FakeCard())
    tiny_wav2sem().save_pretrained(tmp_path / "pushed", push_to_hub=True, repo_id="org/wav2sem-test")
    assert {"preprocessor_config.json", "model.safetensors", "config.json", "modeling_wav2sem.py"} <= set(committed)


def test_fused_from_models_and_dtype(wav2sem_dir, tmp_path):
    backbone_dir = save_backbone(tmp_path, "hubert")
    values, _ = padded_batch((4000,))
    from_models = Wav2SemFusedEncoder.from_backbone_and_wav2sem(
        AutoModel.from_pretrained(backbone_dir), Wav2SemModel.from_pretrained(wav2sem_dir), fusion_init="normal"
    ).eval()
    assert from_models(values).last_hidden_state.shape == (1, 12, 32)
    with pytest.raises(ValueError, match="checkpoint folder, a Hub id or a PreTrainedModel"):
        Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, 42)
    with pytest.raises(ValueError, match="must be a .wav2sem. model or checkpoint, got model_type .hubert."):
        Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, backbone_dir)

    bf16 = Wav2SemFusedEncoder.from_backbone_and_wav2sem(backbone_dir, wav2sem_dir, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    with torch.no_grad():  # fp32 audio into a bf16 model is cast, not an error
        out = bf16(values)
    assert out.last_hidden_state.dtype == torch.bfloat16 and out.last_hidden_state.shape == (1, 12, 32)


def test_wav2sem_casts_input_to_its_dtype():
    model = tiny_wav2sem()
    values, _ = padded_batch((4000,))
    with torch.no_grad():
        torch.testing.assert_close(model(values.double()).semantic_embeds, model(values).semantic_embeds)


def test_forward_flags_are_keywords_and_fused_config_errors():
    """forward(input_values, attention_mask, *, output_hidden_states, output_attentions, return_dict): the output
    switches are keyword-only, so no positional call can swap them (transformers' speech models order them the
    other way round)."""
    model = tiny_wav2sem()
    out = model(torch.randn(1, 4000), None, output_hidden_states=True, output_attentions=False, return_dict=True)
    assert out.hidden_states is not None and out.attentions is None
    with pytest.raises(TypeError):
        model(torch.randn(1, 4000), None, True)
    with pytest.raises(ValueError, match="sub-configs"):
        Wav2SemFusedConfig(hidden_size=64)


def test_fused_rejects_a_wav2sem_checkpoint_at_another_sampling_rate(tmp_path):
    folder = tmp_path / "wav2sem-8k"
    tiny_wav2sem().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(folder)  # overwrites the 16 kHz one
    with pytest.raises(ValueError, match="the Wav2Sem feature extractor expects 8000 Hz"):
        Wav2SemFusedEncoder.from_backbone_and_wav2sem(save_backbone(tmp_path / "b", "hubert"), folder)


@pytest.mark.parametrize("conv_bias", [False, True])
def test_first_conv_layer_folds_group_norm_exactly(conv_bias):
    """Layer 0 computes Conv1d -> GroupNorm(C, C) as one matmul with statistics from the windows' covariance: it must
    equal the two modules run as they are, values and gradients, also for audio with a large DC offset."""
    from modeling_wav2sem.modeling_wav2sem import Wav2SemConvLayer

    torch.manual_seed(0)
    layer = Wav2SemConvLayer(Wav2SemConfig.from_preset("tiny", conv_bias=conv_bias), 0)
    with torch.no_grad():
        layer.layer_norm.weight.uniform_(0.5, 1.5)
        layer.layer_norm.bias.uniform_(-0.5, 0.5)
    audio = (torch.randn(3, 1, 4000) * 0.1 + 5.0).requires_grad_(True)
    exact = copy.deepcopy(layer).double()  # the two modules as they are, in float64
    audio64 = audio.detach().double().requires_grad_(True)
    folded = layer(audio)
    reference = exact.activation(exact.layer_norm(exact.conv(audio64)))
    torch.testing.assert_close(folded, reference.float(), rtol=1e-4, atol=1e-4)
    grads = torch.autograd.grad(folded.square().sum(), [audio, layer.conv.weight, layer.layer_norm.weight])
    expected = torch.autograd.grad(reference.square().sum(), [audio64, exact.conv.weight, exact.layer_norm.weight])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want.float(), rtol=1e-3, atol=1e-3 * float(want.abs().max()))
    if conv_bias:  # the bias cancels in the norm but stays in the graph (DDP expects every parameter to get a gradient)
        (bias_grad,) = torch.autograd.grad(layer(audio).sum(), [layer.conv.bias])
        assert bias_grad.abs().max() < 1e-3


def test_conv_activation_in_place_only_without_autograd():
    """Inference applies GELU in place on each conv layer's own output: same values as the autograd path, which
    keeps the pre-activation for the backward pass."""
    torch.manual_seed(0)
    model = Wav2SemModel(Wav2SemConfig.from_preset("tiny")).eval()
    audio = torch.randn(2, 8000)
    with torch.no_grad():
        inference = model.feature_extractor(audio)
    training = model.feature_extractor(audio.clone().requires_grad_(True))
    torch.testing.assert_close(inference, training.detach())
    training.sum().backward()  # the pre-activations were kept
    assert model.feature_extractor.conv_layers[1].conv.weight.grad.abs().sum() > 0


def test_first_two_conv_layers_in_chunks_equal_the_whole(monkeypatch):
    """Inference runs layers 0 and 1 over time chunks (layer 0's statistics from the whole utterance): same output as
    the unchunked autograd path, padded items included, for chunk sizes that do and do not divide the length."""
    from modeling_wav2sem.modeling_wav2sem import Wav2SemFeatureEncoder

    torch.manual_seed(0)
    encoder = Wav2SemModel(Wav2SemConfig.from_preset("tiny")).eval().feature_extractor
    audio = torch.randn(2, 9000)
    lengths = torch.tensor([9000, 6100])
    whole = encoder(audio.clone().requires_grad_(True), lengths).detach()
    for chunk in (7, 64, 10_000):
        monkeypatch.setattr(Wav2SemFeatureEncoder, "chunk_frames", chunk)
        with torch.no_grad():
            torch.testing.assert_close(encoder(audio, lengths), whole)
    calls = []
    chunked = Wav2SemFeatureEncoder._first_two_layers
    monkeypatch.setattr(Wav2SemFeatureEncoder, "_first_two_layers", lambda *a: calls.append(1) or chunked(*a))
    encoder(audio.clone().requires_grad_(True), lengths).sum().backward()
    assert calls == []  # autograd through the layers: the plain path
    encoder.requires_grad_(False)  # a frozen feature encoder (FaceFormer, fused backbones) takes the chunked path
    torch.testing.assert_close(encoder(audio, lengths), whole)
    assert calls == [1]


# Kernels above twice the stride, at it, below the stride and between the two; an activation with no in-place kernel.
CONV_GEOMETRY = {
    "conv_kernel": (10, 5, 1, 3), "conv_stride": (5, 2, 2, 2), "conv_dim": (16, 24, 8, 12), "feat_extract_activation": "relu"
}


@pytest.mark.parametrize(
    "norm, conv_bias, geometry", [("group", False, {}), ("layer", True, {}), ("group", True, CONV_GEOMETRY)]
)
def test_time_major_inference_equals_the_conv1d_path(norm, conv_bias, geometry, monkeypatch):
    """In inference on CPU the conv stack runs time-major (matmuls on strided windows, layers 0 and 1 in chunks): the
    same features as the channel-major `nn.Conv1d` path, padded items included, in fp32, under bf16 autocast and with
    bf16 weights (to bf16 rounding), for kernels larger than, equal to and smaller than the stride."""
    from modeling_wav2sem.modeling_wav2sem import Wav2SemFeatureEncoder

    config = Wav2SemConfig.from_preset("tiny", feat_extract_norm=norm, conv_bias=conv_bias, **geometry)
    torch.manual_seed(0)
    encoder = Wav2SemModel(config).eval().feature_extractor
    values, mask = padded_batch((6000, 3700, 1234))
    lengths = mask.sum(1)
    monkeypatch.setattr(Wav2SemFeatureEncoder, "chunk_frames", 7)  # several chunks, the last one partial

    def features(time_major: bool, dtype: torch.dtype, autocast: bool) -> torch.Tensor:
        monkeypatch.setattr(Wav2SemFeatureEncoder, "time_major", time_major)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return encoder.to(dtype)(values.to(dtype), lengths)

    settings = ((torch.float32, False, 1e-5), (torch.float32, True, 2e-2), (torch.bfloat16, False, 2e-2))
    for dtype, autocast, tolerance in settings:
        want, got = features(False, dtype, autocast), features(True, dtype, autocast)
        assert got.shape == want.shape and got.dtype == want.dtype
        scale = float(want.abs().max())
        torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance * scale)


def test_short_bf16_cpu_training_attention_takes_the_eager_kernel_with_the_same_result(monkeypatch):
    """Under SDPA, bf16 training on CPU over at most `eager_training_max_frames` frames runs the eager kernel (faster
    there): the same output and gradients as SDPA's to bf16 rounding, padding masked alike; longer sequences, fp32
    and inference keep SDPA, and no attention weights come back unasked."""
    from modeling_wav2sem import modeling_wav2sem as module

    torch.manual_seed(0)
    config = Wav2SemConfig.from_preset("tiny", attention_dropout=0.0)
    attention = Wav2SemModel(config).train().encoder.layers[0].attention
    assert attention.config._attn_implementation == "sdpa"
    eager_calls = []
    eager = module.eager_attention_forward
    monkeypatch.setattr(module, "eager_attention_forward", lambda *a, **k: eager_calls.append(1) or eager(*a, **k))
    mask = torch.ones(3, 1, 1, 20, dtype=torch.bool)
    mask[1, ..., 13:] = False

    def run(max_frames, hidden, autocast=True):
        monkeypatch.setattr(module.Wav2SemAttention, "eager_training_max_frames", max_frames)
        eager_calls.clear()
        attention.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            output, weights = attention(hidden, mask[..., : hidden.shape[1]])
        assert weights is None
        output.float().square().sum().backward()
        return output.float(), attention.q_proj.weight.grad.clone(), len(eager_calls)

    hidden = torch.randn(3, 20, 32)
    sdpa_output, sdpa_grad, sdpa_eager_calls = run(0, hidden)
    eager_output, eager_grad, eager_eager_calls = run(20, hidden)
    assert (sdpa_eager_calls, eager_eager_calls) == (0, 1)
    torch.testing.assert_close(eager_output, sdpa_output, rtol=2e-2, atol=2e-2 * float(sdpa_output.abs().max()))
    torch.testing.assert_close(eager_grad, sdpa_grad, rtol=2e-2, atol=2e-2 * float(sdpa_grad.abs().max()))
    assert run(19, hidden)[2] == 0  # longer than the limit
    assert run(20, hidden, autocast=False)[2] == 0  # fp32
    with torch.no_grad():
        attention(hidden.bfloat16().float(), mask)
    assert eager_calls == []  # inference


def test_positional_conv_in_bf16_matches_fp32():
    """The tiny preset's positional conv (8 channels per group), which oneDNN computes wrongly in bf16 on AMX CPUs,
    gives the fp32 result to bf16 rounding with bf16 weights and under bf16 autocast, and keeps the bf16 dtype."""
    torch.manual_seed(0)
    embed = Wav2SemModel(Wav2SemConfig.from_preset("tiny")).eval().encoder.pos_conv_embed
    hidden = torch.randn(2, 40, 32)
    with torch.no_grad():
        want = embed(hidden)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = embed(hidden)
        weights = embed.to(torch.bfloat16)(hidden.bfloat16())
    for got in (autocast, weights):
        assert got.dtype == torch.bfloat16
        assert float((got.float() - want).norm() / want.norm()) < 1e-2


@pytest.mark.parametrize(
    "norm, conv_bias, geometry",
    [("group", False, {}), ("group", True, {}), ("layer", False, {}), ("layer", True, {}), ("layer", True, CONV_GEOMETRY)],
)
def test_time_major_training_path_equals_the_conv1d_path(norm, conv_bias, geometry, monkeypatch):
    """With autograd on CPU the conv stack runs time-major (`TimeMajorConv1d`: matmuls on strided windows): the same
    F_s and the same gradients for every parameter as the channel-major `nn.Conv1d` path, padded items included, in
    fp32 and (to bf16 rounding) under bf16 autocast, with fp32 contiguous gradients."""
    from modeling_wav2sem.modeling_wav2sem import TimeMajorConv1d, Wav2SemFeatureEncoder

    config = Wav2SemConfig.from_preset(
        "tiny", feat_extract_norm=norm, conv_bias=conv_bias, **geometry, layerdrop=0.0, hidden_dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    )
    torch.manual_seed(0)
    model = Wav2SemModel(config).train()
    values, mask = padded_batch((6000, 3700, 1234))
    calls = []
    apply = TimeMajorConv1d.apply
    monkeypatch.setattr(TimeMajorConv1d, "apply", lambda *a: calls.append(1) or apply(*a))

    def run(time_major: bool, autocast: bool):
        monkeypatch.setattr(Wav2SemFeatureEncoder, "time_major", time_major)
        model.zero_grad()
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            semantic = model(values, mask).semantic_embeds
        semantic.square().sum().backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if "k_proj.bias" not in name}
        return semantic.detach(), grads, len(calls)

    for autocast, tolerance in ((False, 1e-4), (True, 5e-2)):
        want, want_grads, plain_calls = run(False, autocast)
        got, got_grads, time_major_calls = run(True, autocast)
        assert plain_calls == 0 and time_major_calls == len(model.feature_extractor.conv_layers) - (norm == "group")
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance * float(want.abs().max()))
        assert got_grads.keys() == want_grads.keys()
        for name, grad in got_grads.items():  # k_proj.bias is left out: its true gradient is 0 (softmax shift)
            scale = float(want_grads[name].abs().max())
            assert grad.dtype == torch.float32 and grad.is_contiguous(), name
            torch.testing.assert_close(grad, want_grads[name], rtol=tolerance, atol=tolerance * scale, msg=name)
