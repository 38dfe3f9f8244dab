"""`AnimationModelTesterMixin`: the behaviour every speech-driven animation model of this package shares, tested once.

A model's test class mixes it in and says how to build a tiny model of its own:

```python
class TestFaceFormerAnimationModel(AnimationModelTesterMixin):
    model_class = FaceFormerForAnimation
    tiny_config = {"feature_dim": 16}  # fields on top of vertice_dim=V3, train_subjects=SUBJECTS
    forward_kwargs = {}                # extra keyword arguments of every forward with labels (none needed here)
```

and overrides `prepare_model` (e.g. FaceFormer gives its zero-initialised output layer weights) or `expected_batch_loss`
(how the loss of a padded batch combines its items' losses) where the model needs it.

What it checks: output shapes of `forward` and `predict`; the frame count from the audio duration; that each item of a
right-padded batch gives its own result (eval mode, layer-norm conv stack); training-mode gradients with the conv
feature encoder (and a fused encoder's Wav2Sem) frozen; that swapping the encoder for a fused one changes nothing
else; the Auto and remote-code round trips; the `ValueError`s on bad input. Tiny models (20 vertices, a 2-layer
32-wide encoder), CPU, fp32. This file is not collected itself (no `test_` prefix).
"""

import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import pytest
import torch
from conftest import (
    LAYER_NORM_BACKBONE,
    SUBJECTS,
    V3,
    conv_frames_for_samples,
    frames_mask,
    padded_audio,
    tiny_audio_config,
)
from transformers import AutoConfig, AutoModel, AutoFeatureExtractor

from modeling_wav2sem import Wav2SemFusedEncoder

REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_wav2sem"] = None  # the package is not importable in this process
    import torch
    from transformers import AutoModel
    folder, inputs_file, output_file = sys.argv[1:4]
    try:
        AutoModel.from_pretrained(folder)
    except ValueError as error:
        assert "trust_remote_code" in str(error), error
    else:
        raise AssertionError("loading custom code without trust_remote_code should be refused")
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert not any(p.requires_grad for p in model.speech_backbone.feature_extractor.parameters())
    if hasattr(model.audio_encoder, "wav2sem"):
        assert not any(p.requires_grad for p in model.audio_encoder.wav2sem.parameters())
    torch.save(model.predict(**torch.load(inputs_file)).vertices, output_file)
    """
)


class AnimationModelTesterMixin:
    """Mix into a `Test...` class and set `model_class` (and `tiny_config`, `forward_kwargs` as needed)."""

    model_class = None
    tiny_config: dict = {}  # the model's own fields of the tiny model
    forward_kwargs: dict = {}  # extra keyword arguments of forward with labels

    # -- how to build the tiny models (override where needed) ---------------------------------------------------------

    def prepare_model(self, model):
        """Called on every freshly built model (random or from an audio encoder)."""
        return model

    def build_model(self, backbone: str = "wav2vec2", seed: int = 0, backbone_overrides: dict | None = None,
                    **config_overrides):
        """A tiny random model around a `backbone` encoder (see `conftest.tiny_audio_config`), in eval mode."""
        torch.manual_seed(seed)
        fields = {"vertice_dim": V3, "train_subjects": SUBJECTS, **self.tiny_config, **config_overrides}
        config = self.model_class.config_class(audio_config=tiny_audio_config(backbone, backbone_overrides), **fields)
        return self.prepare_model(self.model_class(config)).eval()

    def build_from_audio_encoder(self, path: str, seed: int = 0):
        """A new tiny model around a saved encoder checkpoint (`from_audio_encoder`), in eval mode."""
        torch.manual_seed(seed)
        model = self.model_class.from_audio_encoder(path, vertice_dim=V3, train_subjects=SUBJECTS, **self.tiny_config)
        return self.prepare_model(model).eval()

    def expected_batch_loss(self, alone: list, frames: list[int]) -> torch.Tensor:
        """The loss of a padded batch from its items' outputs alone: the mean over all real frames."""
        return sum(out.loss * t for out, t in zip(alone, frames)) / sum(frames)

    @staticmethod
    def frames_for(model, samples: int) -> int:
        """floor(conv frames * frame_rate / 50), exactly: the frames predicted for `samples` of audio."""
        ratio = Fraction(model.config.frame_rate) / Fraction(model.config.audio_frame_rate)
        return int(conv_frames_for_samples(samples) * ratio)

    # -- shapes and frame counts --------------------------------------------------------------------------------------

    def test_output_shapes(self):
        model = self.build_model()
        values, mask = padded_audio([12000, 9000])
        frames = [self.frames_for(model, 12000), self.frames_for(model, 9000)]
        labels = torch.randn(2, frames[0], V3)
        template = torch.randn(2, V3)
        with torch.no_grad():
            out = model(values, template, [0, 2], labels=labels, attention_mask=mask, vertex_mask=frames_mask(frames),
                        **self.forward_kwargs)
        assert out.loss.shape == () and torch.isfinite(out.loss)
        assert out.vertices.shape == (2, frames[0], V3)
        assert out.vertex_mask.sum(-1).tolist() == frames
        assert out.last_hidden_state.shape[:2] == (2, frames[0])
        k = model.audio_frames_per_vertex_frame
        assert out.audio_features.shape == (2, k * frames[0], model.config.audio_hidden_size)
        generated = model.predict(values, template, torch.tensor([1, 0]), attention_mask=mask)
        assert generated.loss is None and generated.vertices.shape == (2, frames[0], V3)
        assert generated.vertex_mask.sum(-1).tolist() == frames
        one = model.predict(values[:1], template[0], "s1")  # one template for the batch, a speaker by name
        assert one.vertices.shape == (1, frames[0], V3) and one.vertex_mask is None
        as_tuple = model.predict(values[:1], template[:1], 0, return_dict=False)
        assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (1, frames[0], V3)

    @pytest.mark.parametrize("samples", [1000, 5000, 16000, 23457])
    def test_frame_count_from_audio_duration(self, samples):
        model = self.build_model()
        expected = self.frames_for(model, samples)
        assert abs(expected - samples / 16000 * model.config.frame_rate) <= 2  # the duration at frame_rate
        audio = torch.randn(1, samples)
        with torch.no_grad():
            features, frames = model.encode_audio(audio)
            assert frames == [expected]
            assert features.shape == (1, model.audio_frames_per_vertex_frame * expected, model.config.audio_hidden_size)
            assert model.predict(audio, torch.zeros(V3), 0).vertices.shape == (1, expected, V3)
            assert model.predict(audio, torch.zeros(V3), 0, num_frames=expected + 2).vertices.shape[1] == expected + 2

    # -- padded batches -----------------------------------------------------------------------------------------------

    def test_padded_batch_gives_each_item_its_own_result(self):
        # A group-norm conv stack normalises over time and so sees padding; the layer-norm one does not.
        model = self.build_model("wav2vec2", backbone_overrides=LAYER_NORM_BACKBONE)
        lengths = [20000, 12000, 9000]
        frames = [self.frames_for(model, n) for n in lengths]
        values, mask = padded_audio(lengths)
        gen = torch.Generator().manual_seed(5)
        labels = torch.randn(3, max(frames), V3, generator=gen)
        template = torch.randn(3, V3, generator=gen)
        subjects = torch.tensor([0, 1, 2])
        with torch.no_grad():
            batched = model(values, template, subjects, labels=labels, attention_mask=mask,
                            vertex_mask=frames_mask(frames), **self.forward_kwargs)
            alone = []
            for i, (n, t) in enumerate(zip(lengths, frames)):
                alone.append(model(values[i : i + 1, :n], template[i : i + 1], subjects[i : i + 1],
                                   labels=labels[i : i + 1, :t], **self.forward_kwargs))
                torch.testing.assert_close(batched.vertices[i, :t], alone[-1].vertices[0], rtol=0, atol=1e-4)
            torch.testing.assert_close(batched.loss, self.expected_batch_loss(alone, frames))
            generated = model.predict(values, template, subjects, attention_mask=mask)
            for i, (n, t) in enumerate(zip(lengths, frames)):
                single = model.predict(values[i : i + 1, :n], template[i : i + 1], subjects[i])
                assert single.vertices.shape[1] == t and int(generated.vertex_mask[i].sum()) == t
                torch.testing.assert_close(generated.vertices[i, :t], single.vertices[0], rtol=0, atol=1e-4)

    # -- training -----------------------------------------------------------------------------------------------------

    @pytest.mark.parametrize("backbone", ["wav2vec2", "fused"])
    def test_training_gradients_and_frozen_parts(self, backbone):
        model = self.build_model(backbone).train()
        values, mask = padded_audio([9000, 7000])
        frames = [self.frames_for(model, 9000), self.frames_for(model, 7000)]
        labels = torch.randn(2, frames[0], V3)
        out = model(values, torch.zeros(2, V3), [0, "s2"], labels=labels, attention_mask=mask,
                    vertex_mask=frames_mask(frames), **self.forward_kwargs)
        out.loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        assert all(bool(torch.isfinite(g).all()) for g in grads.values())
        outside = [name for name in grads if not name.startswith("audio_encoder.")]
        assert outside and all(grads[name].abs().sum() > 0 for name in outside if name.endswith("weight"))
        assert any(name.startswith("audio_encoder.") for name in grads)  # the encoder's Transformer layers train
        backbone_module = model.speech_backbone
        assert all(p.grad is None and not p.requires_grad for p in backbone_module.feature_extractor.parameters())
        if backbone == "fused":
            wav2sem = model.audio_encoder.wav2sem
            assert not wav2sem.training and backbone_module.training
            assert all(p.grad is None and not p.requires_grad for p in wav2sem.parameters())

    # -- Whisper's encoder as the backbone -----------------------------------------------------------------------------

    @pytest.mark.parametrize("backbone", ["whisper", "whisper-utterance", "fused-whisper"])
    def test_whisper_backbone(self, backbone, tmp_path):
        """Raw audio in, Whisper's frames at the vertex rate: each item of a padded batch as if alone, its two
        convolutions frozen in training, and a saved model that reloads with the raw-audio feature extractor."""
        model = self.build_model(backbone)
        lengths = [14000, 9000]
        values, mask = padded_audio(lengths)
        values = 0.1 * values  # Whisper's audio is in [-1, 1]
        frames = [int(t) for t in model.num_frames_for_audio(model.audio_frame_lengths(torch.tensor(lengths)).tolist())]
        assert frames == [int(n / 16000 * model.config.frame_rate) for n in lengths]
        template = torch.randn(2, V3)
        with torch.no_grad():
            batched = model.predict(values, template, [0, 1], attention_mask=mask)
            assert batched.vertex_mask.sum(-1).tolist() == frames
            for i, n in enumerate(lengths):
                alone = model.predict(values[i : i + 1, :n], template[i : i + 1], i).vertices[0]
                torch.testing.assert_close(batched.vertices[i, : frames[i]], alone, rtol=0, atol=1e-4)
        model.train()
        labels = torch.randn(2, frames[0], V3)
        out = model(values, template, [0, 1], labels=labels, attention_mask=mask, vertex_mask=frames_mask(frames),
                    **self.forward_kwargs)
        out.loss.backward()
        whisper = model.speech_backbone
        assert all(p.grad is None and not p.requires_grad for p in (*whisper.conv1.parameters(),
                                                                      *whisper.conv2.parameters()))
        assert any(p.grad is not None for p in whisper.layers.parameters())
        model.eval().save_pretrained(tmp_path)
        extractor = AutoFeatureExtractor.from_pretrained(tmp_path)
        assert extractor.return_attention_mask and not extractor.do_normalize  # raw audio: log-mel is the model's
        loaded = AutoModel.from_pretrained(tmp_path).eval()
        assert loaded.speech_backbone.config.audio_context == whisper.config.audio_context
        torch.testing.assert_close(loaded.predict(values, template, [0, 1], attention_mask=mask).vertices,
                                   model.predict(values, template, [0, 1], attention_mask=mask).vertices)

    # -- encoder swap and checkpoints ---------------------------------------------------------------------------------

    def test_encoder_swap_changes_nothing_else(self, encoder_dirs):
        def outside(model):
            return {k: v for k, v in model.state_dict().items() if not k.startswith("audio_encoder.")}

        plain = self.build_from_audio_encoder(encoder_dirs["plain"])
        fused = self.build_from_audio_encoder(encoder_dirs["fused"])
        assert type(plain.audio_encoder).__name__ == "Wav2Vec2Model"
        assert isinstance(fused.audio_encoder, Wav2SemFusedEncoder)
        plain_params, fused_params = outside(plain), outside(fused)
        assert plain_params.keys() == fused_params.keys()
        assert all(plain_params[k].shape == fused_params[k].shape for k in plain_params)
        # Loading a fused encoder draws from the global RNG (it builds its parts), so seed after loading: the same
        # seed then gives the same weights outside the encoder.
        models = []
        for kind in ("plain", "fused"):
            encoder = AutoModel.from_pretrained(encoder_dirs[kind])
            torch.manual_seed(0)
            model = self.model_class.from_audio_encoder(encoder, vertice_dim=V3, train_subjects=SUBJECTS,
                                                        **self.tiny_config)
            models.append(self.prepare_model(model).eval())
        plain, fused = models
        plain_params, fused_params = outside(plain), outside(fused)
        for key in plain_params:
            torch.testing.assert_close(fused_params[key], plain_params[key], rtol=0, atol=0, msg=key)
        plain_config, fused_config = plain.config.to_dict(), fused.config.to_dict()
        assert plain_config.pop("audio_config")["model_type"] == "wav2vec2"
        assert fused_config.pop("audio_config")["model_type"] == "wav2sem-fused"
        assert plain_config == fused_config
        assert not any(p.requires_grad for p in plain.audio_encoder.feature_extractor.parameters())
        assert not any(p.requires_grad for p in fused.audio_encoder.backbone.feature_extractor.parameters())
        assert not any(p.requires_grad for p in fused.audio_encoder.wav2sem.parameters())
        # FC1 starts at zero, so F_d == F_p: the fused model starts exactly at the baseline.
        values, mask = padded_audio([12000, 9000])
        template = torch.randn(2, V3)
        frames = [self.frames_for(plain, 12000), self.frames_for(plain, 9000)]
        labels = torch.randn(2, frames[0], V3)
        with torch.no_grad():
            a = plain(values, template, [0, 1], labels=labels, attention_mask=mask, vertex_mask=frames_mask(frames),
                      **self.forward_kwargs)
            b = fused(values, template, [0, 1], labels=labels, attention_mask=mask, vertex_mask=frames_mask(frames),
                      **self.forward_kwargs)
        assert a.audio_features.shape == b.audio_features.shape
        torch.testing.assert_close(a.vertices, b.vertices, rtol=0, atol=1e-5)
        fused.train()
        assert fused.audio_encoder.backbone.training and not fused.audio_encoder.wav2sem.training

    def _saved(self, kind: str, encoder_dirs, folder):
        """A tiny model around the `kind` encoder, its weights moved off their initial values, saved to `folder`."""
        model = self.build_from_audio_encoder(encoder_dirs[kind])
        with torch.no_grad():  # move FC1 off zero so that the fused encoder's own weights matter
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        model.save_pretrained(folder)
        return model

    @pytest.mark.parametrize("kind", ["plain", "fused"])
    def test_auto_round_trip(self, kind, encoder_dirs, tmp_path):
        model = self._saved(kind, encoder_dirs, tmp_path)
        files = set(os.listdir(tmp_path))
        assert [f for f in files if f.endswith((".safetensors", ".bin", ".pt", ".pth"))] == ["model.safetensors"]
        assert {"config.json", "preprocessor_config.json"} <= files
        auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
        config_class, model_class = model.config_class, type(model)
        assert auto_map == {
            "AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}",
            "AutoModel": f"{model_class.__module__.rsplit('.', 1)[-1]}.{model_class.__name__}",
        }
        assert {name + ".py" for name in (m.split(".")[0] for m in auto_map.values())} <= files  # the code travels
        config = AutoConfig.from_pretrained(tmp_path)
        assert isinstance(config, config_class)
        assert config.audio_config.model_type == model.config.audio_config.model_type
        assert AutoFeatureExtractor.from_pretrained(tmp_path).return_attention_mask
        loaded = AutoModel.from_pretrained(tmp_path).eval()
        assert isinstance(loaded, model_class)
        assert not any(p.requires_grad for p in loaded.speech_backbone.feature_extractor.parameters())
        if kind == "fused":
            assert not any(p.requires_grad for p in loaded.audio_encoder.wav2sem.parameters())
        loaded.save_pretrained(tmp_path / "again")  # the loaded model keeps its feature extractor
        assert (tmp_path / "again" / "preprocessor_config.json").is_file()
        values, mask = padded_audio([10000, 7000])
        template = torch.randn(2, V3)
        torch.testing.assert_close(
            loaded.predict(values, template, [2, 0], attention_mask=mask).vertices,
            model.predict(values, template, [2, 0], attention_mask=mask).vertices,
        )

    def test_remote_code_round_trip(self, encoder_dirs, tmp_path):
        model = self._saved("fused", encoder_dirs, tmp_path / "model")
        values, mask = padded_audio([10000, 7000])
        inputs = {"input_values": values, "template": torch.randn(2, V3), "subject_index": torch.tensor([1, 2]),
                  "attention_mask": mask}
        torch.save(inputs, tmp_path / "inputs.pt")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
        result = subprocess.run(
            [sys.executable, "-c", REMOTE_CODE_SCRIPT, str(tmp_path / "model"), str(tmp_path / "inputs.pt"),
             str(tmp_path / "vertices.pt")],
            capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        torch.testing.assert_close(torch.load(tmp_path / "vertices.pt"), model.predict(**inputs).vertices)

    # -- bad input ----------------------------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "case",
        ["template-vertices", "labels-vertices", "unknown-speaker", "speaker-index", "audio-too-short", "nan-audio",
         "inf-audio", "labels-far-longer", "left-padded-labels"],
    )
    def test_bad_input_gives_clear_value_error(self, case):
        model = self.build_model()
        audio, template = torch.randn(1, 8000), torch.zeros(1, V3)
        frames = self.frames_for(model, 8000)
        kwargs = dict(input_values=audio, template=template, subject_index=0)
        if case == "template-vertices":
            kwargs["template"], message = torch.zeros(1, V3 + 3), "template must have shape"
        elif case == "labels-vertices":
            kwargs["labels"], message = torch.zeros(1, frames, V3 + 3), "labels must have shape"
        elif case == "unknown-speaker":
            kwargs["subject_index"], message = "nobody", "Unknown subject"
        elif case == "speaker-index":
            kwargs["subject_index"], message = len(SUBJECTS), "subject_index must be in"
        elif case == "audio-too-short":
            # Shorter than the conv stack's receptive field, or (below 50 fps) than one vertex frame.
            short = 400 if self.frames_for(model, 400) == 0 else 399
            kwargs["input_values"], message = torch.randn(1, short), "at least one vertex frame|too short"
        elif case in ("nan-audio", "inf-audio"):
            audio[0, 100] = float("nan") if case == "nan-audio" else float("inf")
            message = "NaN or Inf"
        elif case == "labels-far-longer":
            kwargs["labels"], message = torch.zeros(1, 10 * frames, V3), "far longer than their audio"
        else:
            kwargs["labels"], message = torch.zeros(1, 3, V3), "right-padded"
            kwargs["vertex_mask"] = torch.tensor([[1, 0, 1]])
        if "labels" in kwargs:
            kwargs.update(self.forward_kwargs)
        with pytest.raises(ValueError, match=message), torch.no_grad():
            model(**kwargs)

    def test_labels_a_frame_or_two_longer_than_their_audio_are_accepted(self):
        model = self.build_model()
        frames = self.frames_for(model, 8000)
        with torch.no_grad():
            out = model(torch.randn(1, 8000), torch.zeros(V3), 0, labels=torch.zeros(1, frames + 2, V3),
                        **self.forward_kwargs)
        assert out.vertices.shape == (1, frames + 2, V3)

    def test_checkpoint_of_another_model_type_is_refused(self, encoder_dirs):
        with pytest.raises(ValueError, match="not a .* one"):
            self.model_class.from_pretrained(encoder_dirs["plain"])  # a wav2vec2 checkpoint
