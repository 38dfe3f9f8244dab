"""transformers' own common model and config tests (`ModelTesterMixin`, `ConfigTester`) on Wav2SemModel and
Wav2SemFusedEncoder, with tiny configs, on CPU.

The common tests come from the transformers sdist of the installed version, fetched once into `.cache/` by
`transformers_common.load_common_tests()`; without network the whole module is skipped with the reason.
"""

import unittest

import pytest
import torch
from transformers import HubertConfig, Wav2Vec2Config

from modeling_wav2sem import Wav2SemConfig, Wav2SemFusedConfig, Wav2SemFusedEncoder, Wav2SemModel
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
