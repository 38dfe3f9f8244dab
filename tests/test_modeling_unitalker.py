"""UniTalker as a transformers model with a swappable audio encoder: the shared animation-model tests, then UniTalker's
own (datasets and identities, the pivot, zero-initialised heads, the PCA basis, long audio, the converter).

Tiny random encoders; CPU, fp32.
"""

import numpy as np
import pytest
import torch
from animation_model_tests import AnimationModelTesterMixin
from conftest import SUBJECTS, TINY_BACKBONE, V3, frames_mask, padded_audio, tiny_audio_config
from transformers import AutoModel, WavLMConfig

from modeling_wav2sem import ANIMATION_DATASETS, UniTalkerConfig, UniTalkerForAnimation
from modeling_wav2sem.convert_unitalker_original_checkpoint import (
    PUBLISHED_DATASETS,
    convert_published_state_dict,
    identity_offsets,
)
from modeling_wav2sem.convert_unitalker_original_checkpoint import main as convert_main
from modeling_wav2sem.modeling_unitalker import principal_components

TINY = {"hidden_size": 16, "identity_dim": 8}


def randomise_heads(model, seed: int = 0):
    """The heads start at zero (so nothing reaches the decoder's gradients); give them weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.copy_(0.1 * torch.randn(head.weight.shape, generator=generator))
            head.bias.copy_(0.01 * torch.randn(head.bias.shape, generator=generator))
    return model


class TestUniTalkerAnimationModel(AnimationModelTesterMixin):
    model_class = UniTalkerForAnimation
    tiny_config = TINY

    def prepare_model(self, model):
        return randomise_heads(model)


MIXTURE = [{"name": "biwi", "vertice_dim": 45}, {"name": "vocaset", "vertice_dim": V3, "subjects": SUBJECTS}]


def tiny_mixture(seed=0, **overrides):
    """A tiny model of a BIWI-layout (15 vertices, 6 identities, 25 fps) and a VOCASET-layout dataset (20, 3, 30)."""
    torch.manual_seed(seed)
    config = UniTalkerConfig.from_preset(
        "biwi+vocaset", audio_config=tiny_audio_config(), datasets=MIXTURE, vertice_dim=45, **{**TINY, **overrides}
    )
    return randomise_heads(UniTalkerForAnimation(config)).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Datasets, identities, heads
# ---------------------------------------------------------------------------------------------------------------------


def test_mixture_config_lists_datasets_identities_and_heads():
    config = UniTalkerConfig.from_preset("biwi+vocaset")
    assert config.audio_config.model_type == "wavlm" and config.audio_hidden_size == 768  # UniTalker-B
    assert UniTalkerConfig.from_preset("biwi+vocaset", size="large").audio_hidden_size == 1024  # UniTalker-L
    assert config.dataset_names == ["biwi", "vocaset"]
    assert [d["annotation_type"] for d in config.datasets] == ["BIWI_23370_vertices", "FLAME_5023_vertices"]
    assert [d["scale"] for d in config.datasets] == [0.2, 1.0]
    assert [d["frame_rate"] for d in config.datasets] == [25.0, 30.0]
    # 6 BIWI + 8 VOCASET training identities, then the pivot (the published D0-D7 table is 934 + 1).
    assert config.num_identities == 15 and config.pivot_index == 14
    assert config.identity_offset("biwi") == 0 and config.identity_offset("vocaset") == 6
    assert config.vertice_dim == ANIMATION_DATASETS["biwi"].vertice_dim and config.train_subjects[0] == "F2"
    assert {k: v["num_coefficients"] for k, v in config.annotation_types.items()} == {
        "BIWI_23370_vertices": 512, "FLAME_5023_vertices": 512,
    }
    again = UniTalkerConfig.from_dict(config.to_dict())
    assert again.datasets == config.datasets and again.num_identities == 15


def test_reduced_mesh_gets_its_own_annotation_type_and_one_head_per_type():
    model = tiny_mixture()
    assert set(model.heads) == {"BIWI_15_vertices", "FLAME_20_vertices"} == set(model.pca)
    assert model.heads["FLAME_20_vertices"].out_features == V3  # min(pca_dim 512, V*3)
    assert model.decoder.identity_embedding.num_embeddings == 6 + 3 + 1
    # A blendshape dataset has a head of its weights and no basis.
    config = UniTalkerConfig(
        audio_config=tiny_audio_config(), dataset=None, **TINY,
        datasets=[{"name": "vocaset"}, {"name": "arkit", "annotation_type": "3DETF_blendshape_weight",
                                        "vertice_dim": 52, "frame_rate": 30, "subjects": ["a"], "pca": False}],
    )
    model = UniTalkerForAnimation(config).eval()
    assert "3DETF_blendshape_weight" not in model.pca and model.heads["3DETF_blendshape_weight"].out_features == 52
    out = model.predict(torch.randn(1, 8000), torch.zeros(52), "a", dataset="arkit")
    assert out.vertices.shape == (1, 14, 52) and out.vertices.abs().max() == 0  # zero head + zero template


def test_each_dataset_has_its_mesh_rate_and_identities():
    model = tiny_mixture()
    audio = torch.randn(2, 16000)
    biwi = model.predict(audio, torch.zeros(45), ["F2", 5], dataset="biwi")
    voca = model.predict(audio, torch.zeros(V3), [0, "s2"], dataset="vocaset")
    assert biwi.vertices.shape == (2, 24, 45) and voca.vertices.shape == (2, 29, V3)  # 25 and 30 fps
    with pytest.raises(ValueError, match="Unknown dataset"):
        model.predict(audio, torch.zeros(V3), 0, dataset="meshtalk")
    with pytest.raises(ValueError, match="Unknown subject"):
        model.predict(audio, torch.zeros(V3), "F2", dataset="vocaset")  # a BIWI identity
    with pytest.raises(ValueError, match="template must have shape"):
        model.predict(audio, torch.zeros(V3), 0, dataset="biwi")  # the other mesh
    with pytest.raises(ValueError, match=r"subject_index must be in \[0, 3\)"):
        model.predict(audio, torch.zeros(V3), 3, dataset="vocaset")
    # Identity rows: the dataset's offset, the pivot for -1.
    assert model.identity_index([0, 2, -1], "vocaset", 3, "cpu").tolist() == [6, 8, 9]
    assert model.identity_index("pivot", "biwi", 2, "cpu").tolist() == [9, 9]


def test_scale_is_applied_inside_so_outputs_stay_in_the_datasets_units():
    model = tiny_mixture()
    audio, template = torch.randn(1, 9000), torch.randn(45)
    out = model.predict(audio, template, 0, dataset="biwi")
    basis = model.pca["BIWI_15_vertices"]
    # vertices = template + decode(coefficients) / 0.2 (the scaled space is BIWI x 0.2, as published).
    torch.testing.assert_close(out.vertices[0], template + basis.decode(out.coefficients[0]) / 0.2)
    labels = out.vertices + 0.1
    loss = model(audio, template, 0, labels=labels, dataset="biwi")
    torch.testing.assert_close(loss.reconstruction_loss, torch.tensor(0.1**2 * 0.2**2), rtol=1e-4, atol=0)


def test_heads_start_at_zero_so_a_new_model_predicts_the_template():
    config = UniTalkerConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS, **TINY)
    model = UniTalkerForAnimation(config).eval()
    assert all(bool((h.weight == 0).all() and (h.bias == 0).all()) for h in model.heads.values())
    template = torch.randn(V3)
    torch.testing.assert_close(model.predict(torch.randn(1, 8000), template, 1).vertices[0],
                               template.expand(14, -1))


# ---------------------------------------------------------------------------------------------------------------------
# The pivot identity
# ---------------------------------------------------------------------------------------------------------------------


def test_pivot_is_the_last_row_and_serves_unseen_speakers():
    model = tiny_mixture()
    audio = torch.randn(1, 8000)
    with torch.no_grad():
        model.decoder.identity_embedding.weight[-1].fill_(3.0)
    pivot = model.predict(audio, torch.zeros(V3), "pivot", dataset="vocaset").vertices
    torch.testing.assert_close(model.predict(audio, torch.zeros(V3), -1, dataset="vocaset").vertices, pivot)
    assert not torch.allclose(model.predict(audio, torch.zeros(V3), 0, dataset="vocaset").vertices, pivot)
    no_pivot = UniTalkerConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS, **TINY,
                               pivot_identity=False, pivot_probability=0.0)
    model = UniTalkerForAnimation(no_pivot).eval()
    assert model.decoder.identity_embedding.num_embeddings == 3 and model.config.pivot_index is None
    with pytest.raises(ValueError, match="no pivot identity"):
        model.predict(audio, torch.zeros(V3), -1)
    with pytest.raises(ValueError, match="needs pivot_identity"):
        UniTalkerConfig(audio_config=tiny_audio_config(), pivot_identity=False, pivot_probability=0.1)


@pytest.mark.parametrize("probability, pivot_rows", [(1.0, True), (0.0, False)])
def test_training_replaces_the_identity_by_the_pivot_with_its_probability(probability, pivot_rows):
    model = tiny_mixture(pivot_probability=probability).train()
    audio = torch.randn(2, 8000)
    out = model(audio, torch.zeros(V3), [0, 1], labels=torch.randn(2, 14, V3), dataset="vocaset")
    out.loss.backward()
    grad = model.decoder.identity_embedding.weight.grad
    used = grad.abs().sum(-1) > 0
    assert used.nonzero().flatten().tolist() == ([9] if pivot_rows else [6, 7])
    model.eval()  # never in evaluation
    torch.manual_seed(0)
    a = model.predict(audio, torch.zeros(V3), 0, dataset="vocaset").vertices
    assert not torch.allclose(a, model.predict(audio, torch.zeros(V3), -1, dataset="vocaset").vertices)


def test_pivot_probability_is_per_item():
    model = tiny_mixture(pivot_probability=0.5).train()
    torch.manual_seed(3)
    rows = model.identity_embeddings([0] * 400, None, "vocaset", 400, "cpu")
    table = model.decoder.identity_embedding.weight
    pivot = (rows == table[9]).all(-1).float().mean()
    assert 0.4 < float(pivot) < 0.6 and bool(((rows == table[6]).all(-1) | (rows == table[9]).all(-1)).all())


# ---------------------------------------------------------------------------------------------------------------------
# PCA basis
# ---------------------------------------------------------------------------------------------------------------------


def test_principal_components_round_trip_and_match_svd():
    generator = torch.Generator().manual_seed(0)
    low_rank = torch.randn(300, 5, generator=generator, dtype=torch.float64) @ torch.randn(
        5, 45, generator=generator, dtype=torch.float64)
    data = low_rank + 0.3
    components, mean = principal_components(data, 8)
    assert components.shape == (8, 45)
    torch.testing.assert_close(components[:5] @ components[:5].T, torch.eye(5, dtype=torch.float64))
    assert components[5:].abs().max() < 1e-6  # beyond the rank
    centred = (data - mean).double()
    torch.testing.assert_close((centred @ components.T) @ components, centred, atol=1e-8, rtol=0)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    torch.testing.assert_close((components[:5] @ right[:5].T).abs(), torch.eye(5, dtype=torch.float64), atol=1e-8,
                               rtol=0)
    few = data[:20]  # fewer samples than dims: the N x N path
    wide, few_mean = principal_components(few, 8)
    _, _, right = torch.linalg.svd(few - few_mean, full_matrices=False)
    torch.testing.assert_close((wide[:5] @ right[:5].T).abs(), torch.eye(5, dtype=torch.float64), atol=1e-8, rtol=0)


def test_fit_pca_round_trips_training_offsets_in_the_scaled_space():
    model = tiny_mixture(pca_dim=6)
    generator = torch.Generator().manual_seed(1)
    offsets = torch.randn(200, 4, generator=generator) @ torch.randn(4, 45, generator=generator) * 1e-3
    model.fit_pca(offsets, "biwi")
    basis = model.pca["BIWI_15_vertices"]
    assert basis.components.shape == (6, 45) and model.heads["BIWI_15_vertices"].out_features == 6
    torch.testing.assert_close(basis.decode(basis.encode(offsets * 0.2)), offsets * 0.2, atol=1e-7, rtol=0)
    torch.testing.assert_close(basis.mean, offsets.mean(0) * 0.2)
    # The PCA loss is the MSE of the coefficients to the projection of the ground truth.
    audio, template = torch.randn(1, 9000), torch.randn(45)
    labels = template + offsets[:13]  # 13 frames at 25 fps
    out = model(audio, template, 1, labels=labels[None], dataset="biwi")
    target = basis.encode(offsets[:13] * 0.2)
    torch.testing.assert_close(out.pca_loss, ((out.coefficients[0] - target) ** 2).mean())
    torch.testing.assert_close(out.loss, out.reconstruction_loss + 0.01 * out.pca_loss)
    with pytest.raises(ValueError, match="offsets must have shape"):
        model.fit_pca(offsets, "vocaset")  # another mesh


def test_pca_basis_is_saved_with_the_model(tmp_path):
    model = tiny_mixture()
    model.fit_pca(torch.randn(100, V3), "vocaset")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.pca["FLAME_20_vertices"].components, model.pca["FLAME_20_vertices"].components)
    torch.testing.assert_close(loaded.pca["FLAME_20_vertices"].mean, model.pca["FLAME_20_vertices"].mean)
    audio = torch.randn(1, 9000)
    torch.testing.assert_close(loaded.eval().predict(audio, torch.zeros(V3), 1, dataset="vocaset").vertices,
                               model.predict(audio, torch.zeros(V3), 1, dataset="vocaset").vertices)


# ---------------------------------------------------------------------------------------------------------------------
# Long audio
# ---------------------------------------------------------------------------------------------------------------------


def test_long_audio_in_one_window_is_the_one_shot_prediction():
    model = tiny_mixture()
    audio = torch.randn(2, 40000)
    one_shot = model.predict(audio, torch.zeros(V3), [0, -1], dataset="vocaset").vertices
    long = model.predict_long(audio, torch.zeros(V3), [0, -1], dataset="vocaset", window_seconds=3.0,
                              overlap_seconds=1.0).vertices
    torch.testing.assert_close(long, one_shot, rtol=0, atol=0)


def test_long_audio_windows_are_cross_faded_linearly_at_the_seams():
    model = tiny_mixture()
    audio, template = torch.randn(1, 16000 * 3), torch.zeros(45)
    fps, window, overlap = 25, 25, 5  # 1 s windows, 0.2 s overlap at 25 fps; hop 20 frames
    long = model.predict_long(audio, template, 2, dataset="biwi", window_seconds=1.0, overlap_seconds=0.2).vertices
    total = long.shape[1]
    assert total == model.predict(audio, template, 2, dataset="biwi").vertices.shape[1] == 74
    pieces = []
    for start in (0, 20, 40, 60):
        end = min(start + window, total)
        clip = audio[:, int(start * 16000 / fps) : int(round(end * 16000 / fps))]
        pieces.append((start, end, model.predict(clip, template, 2, dataset="biwi", num_frames=end - start).vertices))
    fade = torch.linspace(1, 0, overlap)[None, :, None]
    for index, ((start, end, piece), (_, _, before)) in enumerate(zip(pieces[1:], pieces)):
        seam = long[:, start : start + overlap]
        torch.testing.assert_close(seam, fade * before[:, -overlap:] + (1 - fade) * piece[:, :overlap])
        until = end if index == len(pieces) - 2 else start + window - overlap  # the next seam starts there
        torch.testing.assert_close(long[:, start + overlap : until], piece[:, overlap : until - start])
    torch.testing.assert_close(long[:, :20], pieces[0][2][:, :20])
    # Smooth at the seams: no frame-to-frame step larger than the windows' own largest step.
    steps = (long[:, 1:] - long[:, :-1]).abs().amax()
    own = max(float((p[:, 1:] - p[:, :-1]).abs().amax()) for _, _, p in pieces)
    assert float(steps) <= own + 1e-6
    with pytest.raises(ValueError, match="window_seconds > overlap_seconds"):
        model.predict_long(audio, template, 0, dataset="biwi", window_seconds=1.0, overlap_seconds=1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------------


def test_config_errors():
    audio = tiny_audio_config()
    with pytest.raises(ValueError, match="twice"):
        UniTalkerConfig(audio_config=audio, datasets=["vocaset", "vocaset"])
    with pytest.raises(ValueError, match="must give"):
        UniTalkerConfig(audio_config=audio, datasets=["vocaset", {"name": "mine", "vertice_dim": 30}])
    with pytest.raises(ValueError, match="Unknown keys"):
        UniTalkerConfig(audio_config=audio, datasets=["vocaset", {"name": "biwi", "fps": 25}])
    with pytest.raises(ValueError, match="must share vertice_dim"):
        UniTalkerConfig(audio_config=audio,
                        datasets=["vocaset", {"name": "biwi", "annotation_type": "FLAME_5023_vertices"}])
    with pytest.raises(ValueError, match="odd"):
        UniTalkerConfig(audio_config=audio, tcn_kernel_size=4)
    with pytest.raises(ValueError, match="size must be one of"):
        UniTalkerConfig.from_preset("vocaset", size="huge")
    config = UniTalkerConfig.from_preset("vocaset", audio_config=WavLMConfig(**TINY_BACKBONE))
    assert config.datasets[0]["subjects"] == config.train_subjects and config.num_identities == 9


# ---------------------------------------------------------------------------------------------------------------------
# Converter of the published checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def published_state_dict(seed=0):
    """A random state dict with the published names and D0-D7 shapes (a tiny WavLM, decoder width 16, identity 8,
    4 PCA coefficients per vertex head)."""
    generator = torch.Generator().manual_seed(seed)
    encoder = AutoModel.from_config(WavLMConfig(**TINY_BACKBONE))
    state = {f"audio_encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state["decoder.learnable_style_emb.weight"] = torch.randn(935, 8, generator=generator)
    state["decoder.audio_feature_map.weight"] = torch.randn(16, 32, generator=generator)
    state["decoder.audio_feature_map.bias"] = torch.randn(16, generator=generator)
    for i in range(3):
        base = f"decoder.tcn.first_net.conv_layers.{i}."
        width = 24 if i == 0 else 16
        state[base + "conv.weight"] = torch.randn(16, width, 3, generator=generator)
        state[base + "conv.bias"] = torch.randn(16, generator=generator)
        state[base + "norm.weight"] = torch.randn(16, generator=generator)
        state[base + "norm.bias"] = torch.randn(16, generator=generator)
    state["decoder.tcn.first_net.conv_layers.0.residual_layer.0.weight"] = torch.randn(16, 24, 3, generator=generator)
    state["decoder.tcn.first_net.conv_layers.0.residual_layer.0.bias"] = torch.randn(16, generator=generator)
    for annotation, size, _, _, pca in PUBLISHED_DATASETS.values():
        out = 4 if pca else size
        state[f"out_head_dict.{annotation}.weight"] = torch.randn(out, 16, generator=generator)
        state[f"out_head_dict.{annotation}.bias"] = torch.randn(out, generator=generator)
    return state


def pca_file(size, seed):
    rng = np.random.default_rng(seed)
    return {"components_to_data": rng.standard_normal((6, size)).astype(np.float32),
            "original_data_mean": rng.standard_normal(size).astype(np.float32), "S": np.ones(6)}


def test_converter_maps_the_published_names_and_keeps_the_chosen_datasets():
    state = published_state_dict()
    pca = {"biwi": pca_file(70110, 1), "vocaset": pca_file(15069, 2)}
    config, converted, left_out = convert_published_state_dict(
        state, {"D0": "biwi", "D1": "vocaset"}, pca, audio_config=WavLMConfig(**TINY_BACKBONE)
    )
    assert identity_offsets()["D1"] == 6 and identity_offsets()["D7"] == 923
    assert config.dataset_names == ["biwi", "vocaset"] and config.num_identities == 6 + 12 + 1
    assert config.datasets[1]["subjects"][0] == "D1_id0"
    assert config.datasets[0]["subjects"] == ["F2", "F3", "F4", "M3", "M4", "M5"]
    model = UniTalkerForAnimation(config)
    model.load_state_dict(converted, strict=True)  # every tensor of the model, from the checkpoint
    table = state["decoder.learnable_style_emb.weight"]
    torch.testing.assert_close(model.decoder.identity_embedding.weight, table[list(range(18)) + [934]])
    torch.testing.assert_close(model.decoder.layers[0].residual.weight,
                               state["decoder.tcn.first_net.conv_layers.0.residual_layer.0.weight"])
    torch.testing.assert_close(model.decoder.layers[2].norm.bias,
                               state["decoder.tcn.first_net.conv_layers.2.norm.bias"])
    torch.testing.assert_close(model.heads["FLAME_5023_vertices"].weight,
                               state["out_head_dict.FLAME_5023_vertices.weight"])
    torch.testing.assert_close(model.pca["BIWI_23370_vertices"].components,
                               torch.from_numpy(pca["biwi"]["components_to_data"][:4]))
    assert model.config.datasets[0]["scale"] == 0.2 and model.config.datasets[0]["frame_rate"] == 25.0
    assert {k.split(".")[1] for k in left_out} == {"meshtalk_6172_vertices", "3DETF_blendshape_weight",
                                                   "flame_params_from_dadhead", "inhouse_blendshape_weight"}
    # Another selection and order: the identity rows follow it.
    config, converted, _ = convert_published_state_dict(
        state, {"D1": "vocaset", "D6": "chinese"}, {"vocaset": pca["vocaset"]}, WavLMConfig(**TINY_BACKBONE),
        subjects={"vocaset": [f"v{i}" for i in range(12)]},
    )
    torch.testing.assert_close(converted["decoder.identity_embedding.weight"],
                               table[list(range(6, 18)) + list(range(915, 923)) + [934]])
    assert config.datasets[1] == {"name": "chinese", "annotation_type": "inhouse_blendshape_weight", "vertice_dim": 51,
                                  "frame_rate": 30.0, "subjects": [f"D6_id{j}" for j in range(8)], "scale": 1.0,
                                  "pca": False}
    UniTalkerForAnimation(config).load_state_dict(converted, strict=True)


def test_converter_names_what_does_not_fit():
    state = published_state_dict()
    pca = {"biwi": pca_file(70110, 1)}
    audio = WavLMConfig(**TINY_BACKBONE)
    with pytest.raises(ValueError, match="give its pca.npz"):
        convert_published_state_dict(state, {"D0": "biwi", "D1": "vocaset"}, pca, audio)
    with pytest.raises(ValueError, match="Unknown published dataset"):
        convert_published_state_dict(state, {"D9": "x"}, pca, audio)
    broken = dict(state)
    del broken["decoder.tcn.first_net.conv_layers.1.norm.weight"]
    broken["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing: \['decoder.layers.1.norm.weight'\].*unexpected"):
        convert_published_state_dict(broken, {"D0": "biwi"}, pca, audio)
    with pytest.raises(ValueError, match="935|identities"):
        convert_published_state_dict({**state, "decoder.learnable_style_emb.weight": torch.zeros(20, 8)},
                                     {"D0": "biwi"}, pca, audio)
    with pytest.raises(ValueError, match="has components"):
        convert_published_state_dict(state, {"D0": "biwi"}, {"biwi": pca_file(300, 1)}, audio)


def test_converter_command_line_writes_a_loadable_folder(tmp_path):
    torch.save(published_state_dict(), tmp_path / "UniTalker-B-D0-D7.pt")
    np.savez(tmp_path / "pca.npz", **pca_file(15069, 3))
    AutoModel.from_config(WavLMConfig(**TINY_BACKBONE)).config.save_pretrained(tmp_path / "encoder")
    convert_main(["--checkpoint", str(tmp_path / "UniTalker-B-D0-D7.pt"), "--keep", "D1=vocaset", "--pca",
                  f"vocaset={tmp_path / 'pca.npz'}", "--audio_encoder", str(tmp_path / "encoder"),
                  "--output_dir", str(tmp_path / "out")])
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert isinstance(model, UniTalkerForAnimation) and model.config.num_identities == 13
    out = model.predict(torch.randn(1, 16000), torch.zeros(15069), "pivot", dataset="vocaset")
    assert out.vertices.shape == (1, 29, 15069) and torch.isfinite(out.vertices).all()
