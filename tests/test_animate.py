"""`training.animate` (`wav2sem-animate`): the command-line dialect, and the seed and step count of models that sample.

A tiny random VOCA saved with its templates; a subclass whose `predict` samples noise stands in for the diffusion
models (same `predict(..., num_inference_steps=None, generator=None)` contract).
"""

import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SUBJECTS, V3, tiny_audio_config
from transformers import AutoModel

from modeling_wav2sem import (
    FaceDiffuserConfig,
    FaceDiffuserForAnimation,
    UniTalkerConfig,
    UniTalkerForAnimation,
    VOCAConfig,
    VOCAForAnimation,
)
from training import animate


class SamplingVOCA(VOCAForAnimation):
    """VOCA plus generator noise: a model whose `predict` samples, as the diffusion models' does."""

    def predict(self, input_values, template, subject_index=None, num_inference_steps=None, generator=None):
        output = super().predict(input_values, template, subject_index=subject_index)
        self.steps_seen = num_inference_steps
        output.vertices = output.vertices + torch.randn(output.vertices.shape, generator=generator)
        return output


def save_with_templates(model, folder):
    """`model` saved to `folder` with a templates.pkl of its speaking styles, and 1 s of noise as speech.wav beside."""
    model.save_pretrained(folder)
    templates = {subject: np.full((V3 // 3, 3), i, dtype=np.float32) for i, subject in enumerate(SUBJECTS)}
    (folder / "templates.pkl").write_bytes(pickle.dumps(templates))
    sf.write(folder.parent / "speech.wav", np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    return folder


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    model = VOCAForAnimation(VOCAConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS))
    return save_with_templates(model, tmp_path / "voca")


def run(model_dir, output_dir, *extra):
    assert animate.main(["--model_name_or_path", str(model_dir), "--audio", str(model_dir.parent / "speech.wav"),
                         "--subject", "s1", "--output_dir", str(output_dir), "--frames", "1", *extra]) == 0
    return np.load(output_dir / "speech_s1.npy")


def test_old_spellings_still_work_with_a_one_line_warning_each(model_dir, tmp_path, capsys):
    new = run(model_dir, tmp_path / "new")
    assert "deprecated" not in capsys.readouterr().err
    assert animate.main(["--model", str(model_dir), "--audio", str(tmp_path / "speech.wav"), "--subject", "s1",
                         "--out", str(tmp_path / "old"), "--frames", "1"]) == 0
    warnings = [line.split(": ", 1)[1] for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert warnings == ["warning: --model is deprecated; use --model_name_or_path",
                        "warning: --out is deprecated; use --output_dir"]
    np.testing.assert_array_equal(np.load(tmp_path / "old" / "speech_s1.npy"), new)
    assert new.shape == (58, V3)  # 1 s: 49 conv frames at 50 Hz, brought to the default 60 fps


def test_num_inference_steps_for_a_model_that_does_not_sample_is_refused(model_dir, tmp_path):
    with pytest.raises(ValueError, match="VOCAForAnimation does not sample"):
        run(model_dir, tmp_path / "out", "--num_inference_steps", "4")


def test_a_sampling_model_gets_a_seeded_generator_and_the_step_count(model_dir, tmp_path, monkeypatch):
    loaded = []

    def from_pretrained(path, **kwargs):
        loaded.append(SamplingVOCA.from_pretrained(path, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(animate.AutoModel, "from_pretrained", from_pretrained)
    first = run(model_dir, tmp_path / "a", "--seed", "1", "--num_inference_steps", "7")
    again = run(model_dir, tmp_path / "b", "--seed", "1")
    other = run(model_dir, tmp_path / "c", "--seed", "2")
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.5  # unit-variance noise from another seed
    assert [model.steps_seen for model in loaded] == [7, None, None]  # the model's default unless given
    with pytest.raises(ValueError, match="at least 1"):
        run(model_dir, tmp_path / "d", "--num_inference_steps", "0")


def test_a_diffusion_model_samples_reproducibly_with_the_seed_and_steps_given(tmp_path):
    torch.manual_seed(0)
    config = FaceDiffuserConfig(audio_config=tiny_audio_config(), vertice_dim=V3, train_subjects=SUBJECTS,
                                feature_dim=8, gru_hidden_size=8, num_train_timesteps=10, frozen_encoder_layers=[0])
    model = FaceDiffuserForAnimation(config)
    with torch.no_grad():  # its output head starts at zero, which would hide the noise: give every weight some
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    folder = save_with_templates(model, tmp_path / "facediffuser")
    assert type(AutoModel.from_pretrained(folder)) is FaceDiffuserForAnimation
    first = run(folder, tmp_path / "a", "--seed", "3", "--num_inference_steps", "2")
    again = run(folder, tmp_path / "b", "--seed", "3", "--num_inference_steps", "2")
    other = run(folder, tmp_path / "c", "--seed", "4", "--num_inference_steps", "2")
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_several_dataset_model_animates_the_head_asked_for_and_the_pivot(tmp_path):
    torch.manual_seed(0)
    datasets = [{"name": "biwi", "vertice_dim": 45}, {"name": "vocaset", "vertice_dim": V3, "subjects": SUBJECTS}]
    config = UniTalkerConfig.from_preset("biwi+vocaset", audio_config=tiny_audio_config(), datasets=datasets,
                                         vertice_dim=45, hidden_size=16, identity_dim=8)
    model = UniTalkerForAnimation(config).eval()
    with torch.no_grad():  # the heads start at zero: give them weights, so that heads and identities differ
        for head in model.heads.values():
            head.weight.normal_(0, 0.1)
    folder = save_with_templates(model, tmp_path / "unitalker")
    biwi_speaker = config.dataset_entry("biwi")["subjects"][0]
    templates = pickle.loads((folder / "templates.pkl").read_bytes())
    (folder / "templates.pkl").write_bytes(pickle.dumps({**templates, biwi_speaker: np.zeros((15, 3), np.float32)}))

    vocaset = run(folder, tmp_path / "vocaset", "--dataset", "vocaset")
    audio = torch.from_numpy(animate.normalize(animate.decode_audio(str(tmp_path / "speech.wav"))))[None]
    with torch.no_grad():
        expected = model.predict(audio, torch.full((1, V3), 1.0), "s1", dataset="vocaset").vertices[0].numpy()
        biwi = model.predict(audio, torch.zeros(1, 45), biwi_speaker, dataset="biwi").vertices[0].numpy()
    np.testing.assert_allclose(vocaset, expected, atol=1e-6)
    assert len(vocaset) in (29, 30)  # 1 s at VOCASET's 30 fps
    argv = ["--model_name_or_path", str(folder), "--audio", str(tmp_path / "speech.wav"), "--frames", "1"]
    assert animate.main([*argv, "--dataset", "biwi", "--output_dir", str(tmp_path / "biwi")]) == 0
    own = np.load(tmp_path / "biwi" / f"speech_{biwi_speaker}.npy")
    np.testing.assert_allclose(own, biwi, atol=1e-6)  # BIWI's head and first speaker by default
    assert own.shape[1] == 45 and len(own) in (24, 25)  # at BIWI's 25 fps
    with pytest.raises(ValueError, match="no stored neutral mesh"):
        animate.main([*argv, "--subject", "pivot", "--output_dir", str(tmp_path / "pivot")])
    np.save(tmp_path / "face.npy", np.zeros(45, np.float32))
    assert animate.main([*argv, "--subject", "pivot", "--template", str(tmp_path / "face.npy"),
                         "--output_dir", str(tmp_path / "pivot")]) == 0
    pivot = np.load(tmp_path / "pivot" / "speech_pivot.npy")
    assert pivot.shape == own.shape and np.abs(pivot - own).max() > 0  # another identity: another style
    with pytest.raises(ValueError, match="Unknown dataset"):
        animate.main([*argv, "--dataset", "arkit", "--output_dir", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="Unknown subject"):
        animate.main([*argv, "--dataset", "vocaset", "--subject", biwi_speaker, "--output_dir", str(tmp_path / "x")])


def test_dataset_is_refused_for_a_model_with_one_head(model_dir, tmp_path):
    with pytest.raises(ValueError, match="one output head"):
        run(model_dir, tmp_path / "out", "--dataset", "biwi")
