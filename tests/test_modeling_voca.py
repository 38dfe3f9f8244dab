"""VOCA as a transformers model with a swappable audio encoder: the shared animation-model tests, then VOCA's own
(windows, TF padding, one-channel batch norm, time interpolation, frame rates, loss, expression basis, presets).

Tiny random encoders; CPU, fp32.
"""

import numpy as np
import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import (
    LAYER_NORM_BACKBONE,
    SUBJECTS,
    TINY_BACKBONE,
    V3,
    frames_mask,
    padded_audio,
    samples_for_conv_frames,
    tiny_audio_config,
)
from transformers import Wav2Vec2Config

from modeling_wav2sem import (
    ANIMATION_DATASETS,
    VOCA_PRESETS,
    FaceFormerConfig,
    FaceFormerForAnimation,
    VOCAConfig,
    VOCAForAnimation,
)
from modeling_wav2sem.modeling_voca import interpolate_in_time, same_padding, speech_windows, voca_losses


class TestVOCAAnimationModel(AnimationModelTesterMixin):
    model_class = VOCAForAnimation

    def expected_batch_loss(self, alone, frames):
        # Reconstruction pools the real frames, velocity the pairs of consecutive real frames.
        reconstruction = sum(out.reconstruction_loss * t for out, t in zip(alone, frames)) / sum(frames)
        velocity = sum(out.velocity_loss * (t - 1) for out, t in zip(alone, frames)) / sum(t - 1 for t in frames)
        return reconstruction + 10.0 * velocity


def tiny_voca(backbone="wav2vec2", seed=0, backbone_overrides=None, **overrides):
    return TestVOCAAnimationModel().build_model(backbone, seed, backbone_overrides, **overrides)


# ---------------------------------------------------------------------------------------------------------------------
# Windows, TF "SAME" padding, one-channel batch norm
# ---------------------------------------------------------------------------------------------------------------------


def test_window_i_covers_frames_i_minus_8_to_i_plus_7():
    # Hand-computed, window 4 (2 before, 1 after) over 3 frames of 1 feature: zeros beyond the clip.
    small = speech_windows(torch.tensor([[[1.0], [2.0], [3.0]]]), [3], 4)[0, :, :, 0]
    assert small.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 0]]
    # VOCA's 16: window i holds frames i-8 .. i+7; an item shorter than the batch sees zeros past its own end.
    features = torch.arange(1, 21, dtype=torch.float32)[None, :, None].expand(2, 20, 2).clone()
    features[:, :, 1] *= -1
    windows = speech_windows(features, [20, 12], 16)
    assert windows.shape == (2, 20, 16, 2)
    for i in (0, 5, 8, 13, 19):
        expected = [frame + 1 if 0 <= frame < 20 else 0 for frame in range(i - 8, i + 8)]
        assert windows[0, i, :, 0].tolist() == expected and windows[0, i, :, 1].tolist() == [-x for x in expected]
        expected_short = [frame + 1 if 0 <= frame < 12 else 0 for frame in range(i - 8, i + 8)]
        assert windows[1, i, :, 0].tolist() == expected_short


def test_tf_same_padding():
    assert same_padding(16, 3, 2) == (0, 1)  # even length: nothing before, one after (PyTorch would pad 1 and 1)
    assert [same_padding(n, 3, 2) for n in (8, 4, 2)] == [(0, 1)] * 3
    assert same_padding(1, 3, 2) == (1, 1) and same_padding(5, 3, 2) == (1, 1) and same_padding(7, 4, 1) == (1, 2)
    model = tiny_voca()
    seen = []
    hooks = [conv.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for conv in model.convs]
    windows, one_hot = torch.randn(5, 16, 29), torch.eye(3)[[0, 1, 2, 0, 1]]
    with torch.no_grad():
        model.encode_windows(windows, one_hot)
    for hook in hooks:
        hook.remove()
    assert [(x.shape[2], y.shape[2]) for x, y in seen] == [(17, 8), (9, 4), (5, 2), (3, 1)]  # 16 -> 8 -> 4 -> 2 -> 1
    padded, output = seen[0]
    assert padded.shape[1] == 29 + 3 and torch.equal(padded[:, :, 16], torch.zeros(5, 32, 1))  # the pad is after
    normed = (windows - model.batch_norm.running_mean) / torch.sqrt(model.batch_norm.running_var + 1e-5)
    assert torch.allclose(padded[:, :29, :16, 0], normed.transpose(1, 2), atol=1e-6)  # nothing before
    assert torch.equal(padded[:, 29:, :16, 0], one_hot[:, :, None].expand(5, 3, 16))  # one-hot tiled as channels
    # TF's SAME conv: output step j sees input steps 2j, 2j+1, 2j+2 (the last one the zero pad for j = 7).
    conv = model.convs[0]
    source = torch.cat([padded[:, :, :16], torch.zeros(5, 32, 1, 1)], 2)[..., 0]
    weight = conv.weight[..., 0]  # (out, in, 3)
    expected = torch.stack(
        [torch.einsum("bck,ock->bo", source[:, :, 2 * j : 2 * j + 3], weight) + conv.bias for j in range(8)], dim=-1
    )
    torch.testing.assert_close(output[..., 0], expected)  # (the hook sees the conv's output, before its ReLU)


def test_batch_norm_has_one_channel_and_sees_only_real_frames():
    model = tiny_voca(backbone_overrides={"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
                                          "feat_proj_dropout": 0.0})
    assert model.batch_norm.num_features == 1 and model.batch_norm.weight.shape == (1,)
    values, mask = padded_audio([12000, 7000])
    frames = [model.num_frames_for_audio([n])[0] for n in (37, 21)]
    template = torch.randn(2, V3)
    with torch.no_grad():
        features = model.audio_projection(model.encode_audio(values, mask)[0])
        real_windows = speech_windows(features, frames, 16)[frames_mask(frames)]  # (M, 16, 29)
        assert real_windows.shape == (sum(frames), 16, 29)
        model.train()
        out = model(values, template, [0, 2], attention_mask=mask)
    # One scalar mean / variance over every value of the real frames' windows (TF decay 0.9 = momentum 0.1).
    torch.testing.assert_close(model.batch_norm.running_mean, 0.1 * real_windows.mean().reshape(1))
    torch.testing.assert_close(model.batch_norm.running_var, 0.9 + 0.1 * real_windows.var().reshape(1))
    # In training the padded batch is decoded as the concatenation of its items' real frames.
    one_hot = torch.eye(3)[[0] * frames[0] + [2] * frames[1]]
    with torch.no_grad():
        codes = model.encode_windows(real_windows, one_hot)
    torch.testing.assert_close(out.last_hidden_state[frames_mask(frames)], codes)
    torch.testing.assert_close(out.vertices[1, frames[1]:], template[1].expand(out.vertices.shape[1] - frames[1], V3))


# ---------------------------------------------------------------------------------------------------------------------
# Time interpolation and frame rates
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "fps"), [(44, 60.0), (50, 60.0), (22, 30.0), (18, 25.0), (1, 60.0)])
def test_time_interpolation_equals_numpy_interp(frames, fps):
    features = torch.randn(5, 37, dtype=torch.float64)
    actual = interpolate_in_time(features, frames, 50.0, fps)
    expected = np.stack([np.interp(np.arange(frames) / fps, np.arange(37) / 50.0, row) for row in features.numpy()])
    np.testing.assert_allclose(actual.numpy(), expected, rtol=0, atol=1e-12)  # 50 frames: clamped past the end
    assert torch.equal(interpolate_in_time(features[:, :1], 3, 50.0, fps), features[:, :1].expand(5, 3))


def test_model_interpolates_the_encoder_output_per_item():
    model = tiny_voca(backbone_overrides=LAYER_NORM_BACKBONE)  # group norm would see the padding
    values, mask = padded_audio([12000, 7000])
    with torch.no_grad():
        features, frames = model.encode_audio(values, mask)
        assert frames == [44, 25]  # 37 and 21 conv frames at 60 fps
        for i, (n, t) in enumerate(zip([12000, 7000], frames)):
            encoder_output = model.audio_encoder(values[i : i + 1, :n]).last_hidden_state[0].T.double().numpy()
            expected = np.stack([np.interp(np.arange(t) / 60, np.arange(encoder_output.shape[1]) / 50, row)
                                 for row in encoder_output]).T
            np.testing.assert_allclose(features[i, :t].numpy(), expected, rtol=0, atol=1e-5)
        assert not features[1, 25:].any()


def test_60_and_30_fps_presets_give_2x_and_1x_frames():
    audio = torch.randn(1, samples_for_conv_frames(100))  # 2 s of 50 Hz frames
    counts = {}
    for preset in ("vocaset", "vocaset-30fps"):
        config = VOCAConfig.from_preset(preset, audio_config=tiny_audio_config(), vertice_dim=V3)
        assert config.train_subjects == list(ANIMATION_DATASETS["vocaset"].train_subjects)
        assert config.dataset_info.name == "vocaset"
        model = VOCAForAnimation(config).eval()
        counts[preset] = model.predict(audio, torch.zeros(V3), 0).vertices.shape[1]
    assert counts == {"vocaset": 120, "vocaset-30fps": 60}
    # One conv frame (400 samples) is one vertex frame at 60 fps, none at 30 fps.
    assert model.predict(torch.randn(1, 800), torch.zeros(V3), 0).vertices.shape[1] == 1
    with pytest.raises(ValueError, match="at least one vertex frame"):
        model.predict(torch.randn(1, 400), torch.zeros(V3), 0)


@pytest.mark.parametrize("preset", sorted(VOCA_PRESETS))
def test_every_preset_builds_with_the_dataset_mesh(preset):
    config = VOCAConfig.from_preset(preset, audio_config=tiny_audio_config())
    facts = ANIMATION_DATASETS[VOCA_PRESETS[preset].get("data", preset)]
    assert config.vertice_dim == facts.vertice_dim and config.train_subjects == list(facts.train_subjects)
    assert config.frame_rate == {"vocaset": 60.0, "vocaset-30fps": 30.0, "biwi": 25.0}[preset]
    model = VOCAForAnimation(config).eval()
    assert model.convs[0].in_channels == 29 + config.num_subjects and model.fc1.in_features == 64 + config.num_subjects
    out = model.predict(torch.randn(1, 4000), torch.zeros(facts.num_vertices, 3), config.train_subjects[-1])
    assert out.vertices.shape == (1, model.num_frames_for_audio([12])[0], facts.vertice_dim)


def test_published_size_with_a_29_wide_encoder():
    audio_config = Wav2Vec2Config(**{**TINY_BACKBONE, "hidden_size": 29, "num_attention_heads": 1,
                                     "num_conv_pos_embedding_groups": 1})
    model = VOCAForAnimation(VOCAConfig.from_preset("vocaset", audio_config=audio_config))
    assert isinstance(model.audio_projection, torch.nn.Identity)
    head = [p for name, p in model.named_parameters() if not name.startswith("audio_encoder.")]
    trainable = sum(p.numel() for p in head if p.requires_grad)
    assert trainable == 809_563  # the published VOCA's trainable weights (with DeepSpeech inputs)


# ---------------------------------------------------------------------------------------------------------------------
# Loss, initialisation, configuration
# ---------------------------------------------------------------------------------------------------------------------


def test_velocity_term_hand_checked():
    # 2 vertices, 3 frames; the prediction is zero.
    labels = torch.tensor([[[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 2, 0]]], dtype=torch.float32)
    prediction = torch.zeros_like(labels)
    reconstruction, velocity = voca_losses(prediction, labels, None)
    # frames: (0 + 0) / 2, (1 + 0) / 2, (1 + 4) / 2 -> mean 1; pairs: (1 + 0) / 2, (0 + 4) / 2 -> mean 1.25
    assert reconstruction.item() == 1.0 and velocity.item() == 1.25
    reconstruction, velocity = voca_losses(prediction, labels, torch.tensor([[True, True, False]]))
    assert reconstruction.item() == 0.25 and velocity.item() == 0.5  # the padded frame and its pair are left out
    assert voca_losses(prediction[:, :1], labels[:, :1], None)[1].item() == 0.0  # one frame: no pair
    # The model's loss is reconstruction + velocity_weight * velocity of its own prediction.
    model = tiny_voca(velocity_weight=3.0)
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(1, 14, V3, generator=gen)
    with torch.no_grad():
        out = model(torch.randn(1, 4000, generator=gen), torch.zeros(V3), 1, labels=target)
    squared = ((out.vertices - target) ** 2).view(1, 14, -1, 3).sum(-1)
    velocity = (((out.vertices - target).diff(dim=1)) ** 2).view(1, 13, -1, 3).sum(-1)
    torch.testing.assert_close(out.reconstruction_loss, squared.mean())
    torch.testing.assert_close(out.velocity_loss, velocity.mean())
    torch.testing.assert_close(out.loss, squared.mean() + 3.0 * velocity.mean())


def test_init_expression_basis_spans_the_top_principal_directions():
    model = tiny_voca(expression_dim=4)
    gen = torch.Generator().manual_seed(0)
    directions = torch.linalg.qr(torch.randn(V3, 6, generator=gen, dtype=torch.float64))[0].T  # orthonormal (6, V3)
    scales = torch.tensor([10.0, 8.0, 6.0, 4.0, 1.0, 0.5], dtype=torch.float64)
    offsets = (torch.randn(300, 6, generator=gen, dtype=torch.float64) * scales) @ directions + 0.3
    basis = model.init_expression_basis(offsets.float())
    assert basis.shape == (4, V3) and not model.expression_layer.bias.any()
    torch.testing.assert_close(model.expression_layer.weight, basis.T)
    torch.testing.assert_close(basis @ basis.T, torch.eye(4), atol=1e-5, rtol=0)  # orthonormal columns
    centred = (offsets - offsets.mean(0)).numpy()
    top = np.linalg.svd(centred, full_matrices=False)[2][:4]  # numpy's PCA
    np.testing.assert_allclose((basis.T @ basis).double().numpy(), top.T @ top, atol=1e-5)  # the same subspace
    with pytest.raises(ValueError, match="at least 5 offset frames"):
        model.init_expression_basis(offsets[:4])
    with pytest.raises(ValueError, match="vertice_dim"):
        model.init_expression_basis(offsets[:, :-3])


def test_initialisation_follows_the_original():
    model = tiny_voca()
    for conv in model.convs:  # truncated normal at 2 std, std 0.02, weights and biases
        assert conv.weight.abs().max() <= 0.04 and 0.01 < conv.weight.std() < 0.03 and conv.bias.abs().max() <= 0.04
    for fc in (model.fc1, model.fc2):  # std 0.1, zero biases
        assert fc.weight.abs().max() <= 0.2 and 0.06 < fc.weight.std() < 0.12 and not fc.bias.any()
    assert model.batch_norm.weight.item() == 1.0 and model.batch_norm.bias.item() == 0.0


def test_config_validation_and_serialisation():
    audio_config = tiny_audio_config()
    with pytest.raises(ValueError, match="must reach 1 time step"):
        VOCAConfig(audio_config=audio_config, window_size=32)
    with pytest.raises(ValueError, match="conv_channels"):
        VOCAConfig(audio_config=audio_config, conv_channels=[])
    with pytest.raises(ValueError, match="dataset must be one of"):
        VOCAConfig(audio_config=audio_config, dataset="multiface")
    with pytest.raises(ValueError, match="fields must be given"):
        VOCAConfig(audio_config=audio_config, dataset=None, vertice_dim=V3)
    custom = VOCAConfig(audio_config=audio_config, dataset=None, vertice_dim=V3, frame_rate=30, train_subjects=SUBJECTS,
                        window_size=8, conv_channels=(4, 4, 8))
    assert custom.conv_window_lengths == [8, 4, 2, 1] and custom.conv_channels == [4, 4, 8]
    model = VOCAForAnimation(custom).eval()
    assert model.predict(torch.randn(1, 6000), torch.zeros(V3), 2).vertices.shape == (1, 10, V3)  # 18 conv frames
    again = VOCAConfig.from_dict(custom.to_dict())
    assert again.to_dict() == custom.to_dict()
    no_condition = VOCAConfig(audio_config=audio_config, vertice_dim=V3, condition_speech_features=False)
    no_condition = VOCAForAnimation(no_condition)
    assert no_condition.convs[0].in_channels == 29 and no_condition.fc1.in_features == 64 + 8


def test_checkpoints_of_the_other_animation_model_are_refused(tmp_path):
    audio_config = tiny_audio_config()
    VOCAForAnimation(VOCAConfig(audio_config=audio_config, vertice_dim=V3)).save_pretrained(tmp_path / "voca")
    FaceFormerForAnimation(FaceFormerConfig(audio_config=audio_config, vertice_dim=V3)).save_pretrained(tmp_path / "ff")
    with pytest.raises(ValueError, match="`wav2sem-faceformer` model, not a `wav2sem-voca` one"):
        VOCAForAnimation.from_pretrained(tmp_path / "ff")
    with pytest.raises(ValueError, match="`wav2sem-voca` model, not a `wav2sem-faceformer` one"):
        FaceFormerForAnimation.from_pretrained(tmp_path / "voca")
