"""transformers' own common model and config tests (`ModelTesterMixin`, `ConfigTester`) on Wav2SemModel,
Wav2SemFusedEncoder, the animation models (FaceFormerForAnimation, VOCAForAnimation, CodeTalkerForAnimation,
LGLDMForAnimation) and
CodeTalker's stage-1 CodeTalkerVQVAE (vertices in, no audio), with tiny configs, on CPU.

The animation models take a template and a speaker besides the audio: the tester passes them in every input dict (and
labels with their frame mask where a test asks for labels), so the common tests that apply run on them; the ones that
need per-layer hidden states or attention weights, which these models do not return, are skipped with the reason.

The common tests come from the transformers sdist of the installed version, fetched once into `.cache/` by
`transformers_common.load_common_tests()`; without network the whole module is skipped with the reason.
"""

import inspect
import math
import unittest
from fractions import Fraction

import pytest
import torch
from transformers import HubertConfig, Wav2Vec2Config

from modeling_wav2sem import (
    CodeTalkerForAnimation,
    CodeTalkerVQVAE,
    CodeTalkerVQVAEConfig,
    FaceDiffuserForAnimation,
    FaceFormerForAnimation,
    LGLDMForAnimation,
    UniTalkerForAnimation,
    VOCAForAnimation,
    Wav2SemConfig,
    Wav2SemFusedConfig,
    Wav2SemFusedEncoder,
    Wav2SemModel,
)
from transformers_common import CommonTestsUnavailable, load_common_tests

try:
    _modeling_common, _configuration_common = load_common_tests()
except CommonTestsUnavailable as error:
    pytest.skip(f"transformers' common tests are unavailable (sdist not fetched): {error}", allow_module_level=True)

ModelTesterMixin = _modeling_common.ModelTesterMixin
floats_tensor = _modeling_common.floats_tensor
ConfigTester = _configuration_common.ConfigTester

def right_padded_attention_mask(batch_size: int, seq_length: int, min_length: int) -> torch.Tensor:
    """A random right-padded `(B, L)` mask (the padding Wav2Sem accepts): item 0 full, the others random lengths in
    `[min_length, L]`."""
    lengths = torch.randint(min_length, seq_length + 1, (batch_size,))
    lengths[0] = seq_length
    return (torch.arange(seq_length)[None, :] < lengths[:, None]).long()


def _conv_frames(length: int, kernels, strides) -> int:
    for kernel, stride in zip(kernels, strides):
        length = (length - kernel) // stride + 1
    return length


class Wav2SemModelTester:
    """Tiny Wav2Sem: 7 conv layers of 8 channels with the standard kernels and strides (hop 320, receptive field
    400), so 1600 samples give 4 frames; hidden size 16, 2 layers, 2 heads."""

    def __init__(
        self,
        parent,
        batch_size=2,
        seq_length=1600,
        is_training=False,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=20,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
        text_embed_dim=None,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.conv_dim = conv_dim
        self.num_conv_pos_embeddings = num_conv_pos_embeddings
        self.num_conv_pos_embedding_groups = num_conv_pos_embedding_groups
        self.text_embed_dim = text_embed_dim
        config = self.get_config()
        self.output_seq_length = _conv_frames(seq_length, config.conv_kernel, config.conv_stride)
        self.encoder_seq_length = self.output_seq_length
        self.key_length = self.output_seq_length
        self.min_length = config.receptive_field

    def get_config(self):
        return Wav2SemConfig.from_preset(
            "tiny",
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            conv_dim=self.conv_dim,
            num_conv_pos_embeddings=self.num_conv_pos_embeddings,
            num_conv_pos_embedding_groups=self.num_conv_pos_embedding_groups,
            text_embed_dim=self.text_embed_dim,
        )

    def prepare_config_and_inputs(self):
        input_values = floats_tensor([self.batch_size, self.seq_length], scale=1.0)
        config = self.get_config()
        attention_mask = right_padded_attention_mask(self.batch_size, self.seq_length, self.min_length)
        return config, input_values, attention_mask

    def prepare_config_and_inputs_for_common(self):
        config, input_values, attention_mask = self.prepare_config_and_inputs()
        return config, {"input_values": input_values, "attention_mask": attention_mask}

    def create_and_check_model(self, config, input_values, attention_mask):
        model = Wav2SemModel(config).eval()
        with torch.no_grad():
            result = model(input_values, attention_mask=attention_mask)
        self.parent.assertEqual(
            result.last_hidden_state.shape, (self.batch_size, self.output_seq_length, self.hidden_size)
        )
        self.parent.assertEqual(result.semantic_embeds.shape, (self.batch_size, config.text_embed_dim))


class Wav2SemFusedEncoderTester:
    """A tiny HuBERT backbone (hidden size 16) fused with a tiny Wav2Sem (same 320-sample hop, a 12-d projection head),
    with an FC2 to 24 dimensions so that every fusion layer is exercised."""

    def __init__(self, parent, batch_size=2, seq_length=1600, is_training=False, backbone="hubert", output_dim=24):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.backbone = backbone
        self.output_dim = output_dim
        self.wav2sem_tester = Wav2SemModelTester(
            parent, batch_size=batch_size, seq_length=seq_length, text_embed_dim=12
        )
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_attention_heads = 2
        self.output_seq_length = self.wav2sem_tester.output_seq_length
        self.encoder_seq_length = self.output_seq_length
        self.key_length = self.output_seq_length
        self.min_length = self.wav2sem_tester.min_length

    def get_audio_config(self):
        config_class = {"hubert": HubertConfig, "wav2vec2": Wav2Vec2Config}[self.backbone]
        return config_class(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=20,
            conv_dim=(8,) * 7,
            num_conv_pos_embeddings=4,
            num_conv_pos_embedding_groups=2,
            layerdrop=0.0,
            mask_time_length=2,  # SpecAugment in training mode: spans must fit in the 4 frames
            vocab_size=8,
        )

    def get_config(self):
        return Wav2SemFusedConfig(
            audio_config=self.get_audio_config(),
            wav2sem_config=self.wav2sem_tester.get_config(),
            output_dim=self.output_dim,
            fusion_init="normal",
        )

    def prepare_config_and_inputs(self):
        input_values = floats_tensor([self.batch_size, self.seq_length], scale=1.0)
        config = self.get_config()
        attention_mask = right_padded_attention_mask(self.batch_size, self.seq_length, self.min_length)
        return config, input_values, attention_mask

    def prepare_config_and_inputs_for_common(self):
        config, input_values, attention_mask = self.prepare_config_and_inputs()
        return config, {"input_values": input_values, "attention_mask": attention_mask}

    def create_and_check_model(self, config, input_values, attention_mask):
        model = Wav2SemFusedEncoder(config).eval()
        with torch.no_grad():
            result = model(input_values, attention_mask=attention_mask)
        width = config.output_dim or self.hidden_size
        self.parent.assertEqual(result.last_hidden_state.shape, (self.batch_size, self.output_seq_length, width))
        self.parent.assertEqual(result.semantic_embeds.shape, (self.batch_size, 12))


# Left padding: the common SDPA test builds a left-padded mask; Wav2Sem rejects it by contract (see below).
LEFT_PADDING = (
    "Wav2Sem takes right-padded audio only, as audio feature extractors pad it, and raises a ValueError on a "
    "left-padded attention_mask; the right-padded variants of this test run"
)


class _AudioEncoderCommonTests(ModelTesterMixin):
    """Settings and skips shared by both encoders (audio in, no token embeddings, no loss head)."""

    test_resize_embeddings = False  # no token embeddings to resize
    test_resize_position_embeddings = False
    test_mismatched_shapes = False  # needs a classification head with `num_labels`; these are bare encoders
    is_encoder_decoder = False
    main_input_name = "input_values"

    def test_model(self):
        config_and_inputs = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_model(*config_and_inputs)

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="an audio encoder: raw waveform in, no token input embeddings to get or set")
    def test_model_get_set_embeddings(self):
        pass

    def test_eager_matches_sdpa_inference_fp32_pad_right_output_attentions(self):
        """The common `fp32_pad_left_output_attentions` case (SDPA falls back to eager to return weights), with the
        right padding Wav2Sem accepts."""
        _modeling_common._test_eager_matches_sdpa_inference(
            self, "fp32_pad_right_output_attentions", "fp32", "right", True, True, False
        )

    def test_set_attn_implementation(self):
        """`set_attn_implementation` switches the attention of a built model (else the common
        `test_can_set_attention_dynamically*` tests skip themselves)."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            for implementation in ("eager", "sdpa"):
                model.set_attn_implementation(implementation)
                self.assertEqual(model.config._attn_implementation, implementation)

    def test_torch_export(self):
        """Stand-in for the sdist-less `ExportTesterMixin`: `torch.export` (static shapes) of the model, with and
        without a padding mask, gives the eager outputs."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            torch.manual_seed(0)
            model = model_class(config).eval()
            for inputs in (inputs_dict, {"input_values": inputs_dict["input_values"]}):
                with self.subTest(model_class.__name__, attention_mask="attention_mask" in inputs):
                    exported = torch.export.export(model, args=(), kwargs=inputs)
                    with torch.no_grad():
                        expected = model(**inputs)
                        actual = exported.module()(**inputs)
                    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state)
                    torch.testing.assert_close(actual.semantic_embeds, expected.semantic_embeds)


def _sdpa_variants(*, left_padded_with_mask: bool, dtypes=("fp16", "fp32", "bf16")) -> list[str]:
    """Names of the parameterized `test_eager_matches_sdpa_inference_*` tests, by padding and dtype."""
    names = []
    for name in dir(ModelTesterMixin):
        if not name.startswith("test_eager_matches_sdpa_inference_"):
            continue
        left_with_mask = "_pad_left" in name and "_no_attn_mask" not in name
        if left_with_mask == left_padded_with_mask and any(f"_{dtype}_" in name for dtype in dtypes):
            names.append(name)
    return names


def _skip_left_padding():
    for name in _sdpa_variants(left_padded_with_mask=True):
        setattr(_AudioEncoderCommonTests, name, unittest.skip(reason=LEFT_PADDING)(getattr(ModelTesterMixin, name)))


_skip_left_padding()


class Wav2SemModelCommonTest(_AudioEncoderCommonTests, unittest.TestCase):
    all_model_classes = (Wav2SemModel,)

    def setUp(self):
        self.model_tester = Wav2SemModelTester(self)
        self.config_tester = ConfigTester(self, config_class=Wav2SemConfig, has_text_modality=False, hidden_size=48)


class Wav2SemFusedEncoderCommonTest(_AudioEncoderCommonTests, unittest.TestCase):
    all_model_classes = (Wav2SemFusedEncoder,)
    _is_composite = True

    def setUp(self):
        self.model_tester = Wav2SemFusedEncoderTester(self)
        self.config_tester = ConfigTester(
            self, config_class=Wav2SemFusedConfig, has_text_modality=False, common_properties=["hidden_size"]
        )


# ----------------------------------------------------------------------------------------------------------------------
# The animation models: FaceFormer and VOCA
# ----------------------------------------------------------------------------------------------------------------------


# The animation models return meshes, not per-layer outputs: their forward takes no `output_hidden_states` /
# `output_attentions` (the audio encoder's own are tested on the encoders).
NO_LAYER_OUTPUTS = "an audio-to-mesh model: forward returns meshes, no per-layer hidden states or attention weights"


class AnimationModelTester:
    """A tiny animation model (`config_class` with `model_fields`) around a tiny wav2vec2 encoder (hidden size 16,
    2 layers, 8 conv channels): 4 vertices, 2 speakers; 3200 samples = 10 conv frames, so 6 vertex frames at 30 fps
    and 12 at 60 fps. Inputs: audio with a right-padded mask (every item long enough for 2 vertex frames), a template
    and a speaker per item; with `return_labels`, vertices and their mask for each item's frames."""

    def __init__(self, parent, config_class, model_fields, batch_size=2, seq_length=3200, is_training=True):
        self.parent = parent
        self.padded = True  # False: every item has all `seq_length` samples
        self.config_class = config_class
        self.model_fields = model_fields
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.vertice_dim = 12
        self.train_subjects = ["a", "b"]
        self.hidden_size = 16
        self.num_hidden_layers = 2
        self.num_attention_heads = 2
        config = self.get_config()
        hop = math.prod(config.audio_config.conv_stride)
        # The shortest item: 2 vertex frames, i.e. ceil(2 * 50 / fps) conv frames.
        conv_frames = math.ceil(2 * config.audio_frame_rate / config.frame_rate)
        self.min_length = hop * (conv_frames - 1) + 400

    def get_audio_config(self):
        return Wav2Vec2Config(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=20,
            conv_dim=(8,) * 7,
            num_conv_pos_embeddings=4,
            num_conv_pos_embedding_groups=2,
            layerdrop=0.0,
            mask_time_length=2,
            vocab_size=8,
        )

    def get_config(self):
        return self.config_class(
            audio_config=self.get_audio_config(),
            vertice_dim=self.vertice_dim,
            train_subjects=self.train_subjects,
            **self.model_fields,
        )

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        inputs = {
            "input_values": floats_tensor([self.batch_size, self.seq_length], scale=1.0),
            "attention_mask": right_padded_attention_mask(
                self.batch_size, self.seq_length, self.min_length if self.padded else self.seq_length
            ),
            "template": floats_tensor([self.batch_size, self.vertice_dim], scale=1.0),
            "subject_index": torch.arange(self.batch_size) % len(self.train_subjects),
        }
        return config, inputs

    def frames(self, config, attention_mask) -> list[int]:
        """Vertex frames of each item: floor(conv frames * frame_rate / 50)."""
        audio_config = config.audio_config
        kernels, strides = audio_config.conv_kernel, audio_config.conv_stride
        conv = [_conv_frames(int(n), kernels, strides) for n in attention_mask.sum(-1)]
        ratio = Fraction(config.frame_rate) / Fraction(config.audio_frame_rate)
        return [int(n * ratio) for n in conv]

    def add_labels(self, config, inputs):
        frames = self.frames(config, inputs["attention_mask"])
        inputs["labels"] = floats_tensor([self.batch_size, max(frames), self.vertice_dim], scale=1.0)
        inputs["vertex_mask"] = torch.arange(max(frames))[None] < torch.tensor(frames)[:, None]
        return inputs

    def create_and_check_model(self, model_class):
        config, inputs = self.prepare_config_and_inputs_for_common()
        model = model_class(config).eval()
        frames = self.frames(config, inputs["attention_mask"])
        with torch.no_grad():
            output = model(**inputs)
            trained = model(**self.add_labels(config, dict(inputs)))
        self.parent.assertEqual(output.vertices.shape, (self.batch_size, max(frames), self.vertice_dim))
        k = model.audio_frames_per_vertex_frame  # audio frames per vertex frame (FaceDiffuser pairs 2)
        self.parent.assertEqual(output.audio_features.shape[:2], (self.batch_size, k * max(frames)))
        self.parent.assertEqual(trained.loss.shape, ())


class _AnimationCommonTests(ModelTesterMixin):
    """Settings and skips shared by the animation models: audio plus a template and a speaker in, meshes out."""

    test_resize_embeddings = False  # no token embeddings to resize
    test_resize_position_embeddings = False
    test_mismatched_shapes = False  # needs a classification head with `num_labels`
    is_encoder_decoder = False
    main_input_name = "input_values"
    _is_composite = True  # the audio encoder is a sub-model with its own sub-config
    model_fields: dict = {}

    def setUp(self):
        config_class = self.all_model_classes[0].config_class
        self.model_tester = AnimationModelTester(self, config_class, self.model_fields)
        self.config_tester = ConfigTester(
            self, config_class=config_class, has_text_modality=False, common_properties=["num_subjects"]
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            inputs_dict = self.model_tester.add_labels(self.model_tester.get_config(), inputs_dict)
        if "generator" in inspect.signature(model_class.forward).parameters:
            # A diffusion model: each item's training step and noise (or its samples) from seed 0, so calls compare.
            inputs_dict["generator"] = 0
        return inputs_dict

    def test_model(self):
        for model_class in self.all_model_classes:
            self.model_tester.create_and_check_model(model_class)

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="an audio-to-mesh model: raw waveform in, no token input embeddings to get or set")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason=NO_LAYER_OUTPUTS)
    def test_attention_outputs(self):
        pass

    @unittest.skip(reason=NO_LAYER_OUTPUTS)
    def test_hidden_states_output(self):
        pass

    @unittest.skip(reason=NO_LAYER_OUTPUTS)
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @unittest.skip(
        reason=f"{NO_LAYER_OUTPUTS}, and it asks for them; the encoder runs stage by stage, outside its decorated "
        "forward, so no `capture_outputs` can chain"
    )
    def test_capture_outputs_decorator(self):
        pass

    def test_training_gradient_checkpointing_use_reentrant_true(self):
        """The common test with the conv feature encoder trainable: it probes the first checkpointed layer, a conv
        layer of the feature encoder, which reentrant checkpointing never recomputes while the encoder is frozen (its
        input needs no gradient), rightly. The default and non-reentrant variants run on the frozen one."""
        self.model_tester.model_fields = {**self.model_fields, "freeze_feature_encoder": False}
        super().test_training_gradient_checkpointing_use_reentrant_true()

    def test_batching_equivalence(self, atol=1e-5, rtol=1e-5):
        """The common test on items of equal length: for a padded batch the output's `vertex_mask` has no counterpart
        in the output of its first, unpadded item alone (`None` there, so the common test's key lookup fails). Padded
        batches are compared item by item in tests/animation_model_tests.py."""
        self.model_tester.padded = False
        super().test_batching_equivalence(atol=atol, rtol=rtol)

    def test_model_outputs_equivalence(self):
        """The common tuple-vs-dict comparison, with and without labels, on a right-padded batch; without its
        `output_hidden_states` / `output_attentions` variants (see NO_LAYER_OUTPUTS), and comparing the boolean
        `vertex_mask` exactly (the common test subtracts outputs for its message, which bool tensors refuse)."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            for return_labels in (False, True):
                inputs = self._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
                with torch.no_grad():
                    tuple_output = model(**inputs, return_dict=False)
                    dict_output = model(**inputs, return_dict=True).to_tuple()
                self.assertEqual(len(tuple_output), len(dict_output))
                self.assertIsNotNone(dict_output[-1] if return_labels else dict_output[0])
                for tuple_value, dict_value in zip(tuple_output, dict_output):
                    torch.testing.assert_close(tuple_value, dict_value, atol=1e-5, rtol=0)

    def test_eager_matches_sdpa_inference_fp32_pad_right_vertices(self):
        """Stand-in for the common `test_eager_matches_sdpa_inference_*` (which compare per-layer hidden states): the
        meshes and the encoder output of a right-padded batch are the same with the encoder's eager and SDPA
        attention."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            torch.manual_seed(0)
            model = model_class(config).eval()
            outputs = {}
            for implementation in ("eager", "sdpa"):
                model.set_attn_implementation(implementation)
                self.assertEqual(model.audio_encoder.config._attn_implementation, implementation)
                with torch.no_grad():
                    outputs[implementation] = model(**inputs)
            # Everything the output holds (a sampled model's has no single last hidden state).
            self.assertEqual(outputs["sdpa"].keys(), outputs["eager"].keys())
            self.assertTrue({"vertices", "audio_features"} <= set(outputs["eager"].keys()))
            for key in outputs["eager"].keys():
                torch.testing.assert_close(outputs["sdpa"][key], outputs["eager"][key], atol=1e-5, rtol=1e-4)


def _skip_sdpa_hidden_state_comparisons():
    reason = f"{NO_LAYER_OUTPUTS}; see test_eager_matches_sdpa_inference_fp32_pad_right_vertices"
    for name in dir(ModelTesterMixin):
        if name.startswith("test_eager_matches_sdpa_inference_"):
            setattr(_AnimationCommonTests, name, unittest.skip(reason=reason)(getattr(ModelTesterMixin, name)))


_skip_sdpa_hidden_state_comparisons()


class FaceFormerCommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (FaceFormerForAnimation,)
    model_fields = {"feature_dim": 8, "num_attention_heads": 2}


class VOCACommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (VOCAForAnimation,)
    model_fields = {"conv_channels": [4, 4, 8, 8], "fc_hidden_size": 8, "expression_dim": 6}


TINY_CODETALKER_VQ = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 12,
                      "tokens_per_frame": 2, "code_dim": 4, "num_embeddings": 8}


class CodeTalkerCommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (CodeTalkerForAnimation,)
    model_fields = {"feature_dim": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "vqvae_config": TINY_CODETALKER_VQ}


class LGLDMCommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (LGLDMForAnimation,)
    model_fields = {"feature_dim": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "num_inference_steps": 2,
                    "vqvae_config": TINY_CODETALKER_VQ}

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if "labels" in inputs_dict:  # each item's diffusion step and noise from seed 0, so two calls compare
            inputs_dict["generator"] = 0
        return inputs_dict


class FaceDiffuserCommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (FaceDiffuserForAnimation,)
    model_fields = {"feature_dim": 8, "gru_hidden_size": 8, "num_train_timesteps": 4, "frozen_encoder_layers": [0]}


class UniTalkerCommonTest(_AnimationCommonTests, unittest.TestCase):
    all_model_classes = (UniTalkerForAnimation,)
    # No random pivot replacement in training mode, so that two training-mode calls compare.
    model_fields = {"hidden_size": 8, "identity_dim": 4, "pivot_probability": 0.0}


class CodeTalkerVQVAETester:
    """A tiny stage-1 VQ-VAE (no audio): 4 vertices, hidden size 8, one layer; inputs are 5 frames of vertices and a
    template per item."""

    def __init__(self, parent, batch_size=2, num_frames=5, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.is_training = is_training
        self.vertice_dim = 12
        self.hidden_size = TINY_CODETALKER_VQ["hidden_size"]
        self.num_hidden_layers = TINY_CODETALKER_VQ["num_hidden_layers"]
        self.num_attention_heads = TINY_CODETALKER_VQ["num_attention_heads"]

    def get_config(self):
        return CodeTalkerVQVAEConfig(vertice_dim=self.vertice_dim, **TINY_CODETALKER_VQ)

    def prepare_config_and_inputs_for_common(self):
        inputs = {
            "vertices": floats_tensor([self.batch_size, self.num_frames, self.vertice_dim], scale=1.0),
            "template": floats_tensor([self.batch_size, self.vertice_dim], scale=1.0),
        }
        return self.get_config(), inputs

    def create_and_check_model(self, model_class):
        config, inputs = self.prepare_config_and_inputs_for_common()
        model = model_class(config).eval()
        with torch.no_grad():
            output = model(**inputs)
        self.parent.assertEqual(output.vertices.shape, (self.batch_size, self.num_frames, self.vertice_dim))
        self.parent.assertEqual(output.code_indices.shape, (self.batch_size, self.num_frames * 2))
        self.parent.assertEqual(output.loss.shape, ())


class CodeTalkerVQVAECommonTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (CodeTalkerVQVAE,)
    test_resize_embeddings = False  # the codebook is not a token embedding
    test_resize_position_embeddings = False
    test_mismatched_shapes = False
    is_encoder_decoder = False
    main_input_name = "vertices"

    def setUp(self):
        self.model_tester = CodeTalkerVQVAETester(self)
        self.config_tester = ConfigTester(self, config_class=CodeTalkerVQVAEConfig, has_text_modality=False,
                                          common_properties=["hidden_size", "num_hidden_layers"])

    def test_model(self):
        self.model_tester.create_and_check_model(CodeTalkerVQVAE)

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="a motion autoencoder: vertices in, no token input embeddings to get or set")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skip(reason="the VQ-VAE returns meshes and codes, no per-layer hidden states or attention weights")
    def test_attention_outputs(self):
        pass

    @unittest.skip(reason="the VQ-VAE returns meshes and codes, no per-layer hidden states or attention weights")
    def test_hidden_states_output(self):
        pass

    @unittest.skip(reason="the VQ-VAE returns meshes and codes, no per-layer hidden states or attention weights")
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @unittest.skip(reason="the VQ-VAE returns no per-layer outputs for a `capture_outputs` decorator to collect")
    def test_capture_outputs_decorator(self):
        pass

    def test_model_outputs_equivalence(self):
        """The common tuple-vs-dict comparison, without its `output_hidden_states` / `output_attentions` variants
        (the VQ-VAE returns no per-layer outputs)."""
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        model = CodeTalkerVQVAE(config).eval()
        with torch.no_grad():
            tuple_output = model(**inputs, return_dict=False)
            dict_output = model(**inputs, return_dict=True).to_tuple()
        self.assertEqual(len(tuple_output), len(dict_output))
        for tuple_value, dict_value in zip(tuple_output, dict_output):
            torch.testing.assert_close(tuple_value, dict_value, atol=1e-5, rtol=0)

    @unittest.skip(reason="no gradient checkpointing: a 6-layer VQ-VAE trained at batch 1 (as published)")
    def test_training_gradient_checkpointing(self):
        pass

    @unittest.skip(reason="no gradient checkpointing: a 6-layer VQ-VAE trained at batch 1 (as published)")
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        pass

    @unittest.skip(reason="no gradient checkpointing: a 6-layer VQ-VAE trained at batch 1 (as published)")
    def test_training_gradient_checkpointing_use_reentrant_true(self):
        pass


def _skip_vqvae_sdpa_comparisons():
    reason = ("the VQ-VAE computes its attention with SDPA only (the published scale passed to it); per-layer outputs "
              "are not returned")
    for name in dir(ModelTesterMixin):
        if name.startswith("test_eager_matches_sdpa_inference_"):
            setattr(CodeTalkerVQVAECommonTest, name, unittest.skip(reason=reason)(getattr(ModelTesterMixin, name)))


_skip_vqvae_sdpa_comparisons()
