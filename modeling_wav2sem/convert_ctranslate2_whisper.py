"""Convert a CTranslate2 Whisper model (faster-whisper's format) into a transformers Whisper checkpoint.

    python -m modeling_wav2sem.convert_ctranslate2_whisper --model_dir CT2_DIR --output_dir DIR [--dtype float32]

`CT2_DIR` is a folder as faster-whisper and `ct2-transformers-converter` write it: `model.bin` (the weights),
`config.json` (suppressed tokens, alignment heads) and `tokenizer.json` (a Hugging Face tokenizers file); a
`vocabulary.txt` / `vocabulary.json`, when present, is only used to check that the tokenizer fits the embeddings.
`DIR` receives a `WhisperForConditionalGeneration` (`config.json`, `generation_config.json`, `model.safetensors`)
and a `WhisperProcessor` (`processor_config.json` with the feature extractor, `tokenizer.json`,
`tokenizer_config.json`), so

    WhisperForConditionalGeneration.from_pretrained(DIR)
    WhisperProcessor.from_pretrained(DIR)

work offline, and `model.generate(input_features)` transcribes (English-only models: `<|startoftranscript|>
<|notimestamps|>`; multilingual ones: with `language=` / `task=` or language detection, as for OpenAI's checkpoints).

The `model.bin` layout (binary version 6, little-endian; a string is a u16 byte count that includes a trailing NUL,
then the bytes and the NUL):

    u32 binary_version | str spec ("WhisperSpec") | u32 spec_revision | u32 num_variables
    num_variables x ( str name | u8 rank | u32 dims[rank] | u8 dtype | u32 num_bytes | raw row-major data )
    u32 num_aliases | num_aliases x ( str alias | str target )

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Quantised weights (`--quantization
int8*` / `int16` in CTranslate2) are stored as integers next to a `<name>_scale` variable and are dequantised here
(`weight = quantised / scale`; int8: one scale per output row / channel, int16: one scale for the tensor). Aliases
point a name at an identical variable stored once (e.g. the output projection at the token embeddings). Files that are
truncated, have trailing bytes, an unknown dtype code, a size that does not match the shape, or another binary
version raise a `ValueError` that says where and what.

Mapping onto transformers (d = d_model; the same for the encoder and decoder layers):

    {en,de}coder/layer_i/self_attention/linear_0   [3d, d]  -> rows 0:d q_proj, d:2d k_proj, 2d:3d v_proj
    decoder/layer_i/attention/linear_0 / linear_1  [d]/[2d] -> encoder_attn.q_proj / rows 0:d k_proj, d:2d v_proj
    .../self_attention/linear_1, attention/linear_2          -> self_attn.out_proj, encoder_attn.out_proj
    .../self_attention/layer_norm, attention/layer_norm     -> self_attn_layer_norm, encoder_attn_layer_norm
    .../ffn/layer_norm, ffn/linear_0, ffn/linear_1           -> final_layer_norm, fc1, fc2
    encoder/conv{1,2}, {en,de}coder/layer_norm, {en,de}coder/position_encodings/encodings, decoder/embeddings
                                                             -> conv{1,2}, layer_norm, embed_positions, embed_tokens
    decoder/projection/weight                                -> proj_out (tied to embed_tokens when identical)

(`gamma` / `beta` are `weight` / `bias`.) CTranslate2 fuses a zero bias for k_proj, which transformers does not have;
those slices are dropped. Dropping is exact whatever their value: a key bias adds the same q.b to every score of a
query row, which the softmax cancels.

The conversion is strict: every parameter of the transformers model must be filled with the right shape, and every
CTranslate2 variable must be used, be a configuration flag with the value this architecture needs (GELU, pre-norm,
unscaled embeddings, no ALiBi, ...), or be listed in `UNUSED_VARIABLES`; anything else raises a `ValueError` naming
all offending variables. The architecture (layers, heads, widths, mel bins, vocabulary, context lengths) is read from
the stored shapes and the `num_heads` flags; token ids come from `tokenizer.json`, suppressed tokens and alignment
heads from `config.json`. Weights are converted to `dtype` (float32 by default; float16 -> float32 is exact).
"""

import argparse
import json
import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizerFast,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

SUPPORTED_BINARY_VERSIONS = (6,)
WHISPER_SPEC = "WhisperSpec"
# CTranslate2's DataType enum (include/ctranslate2/types.h): code -> (name, numpy dtype read from the file).
# bfloat16 is read as raw uint16 and widened to float32 (exact).
DTYPES = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),
}
# Configuration flags of the CTranslate2 decoder/encoder spec and the value a Whisper model must have. They are
# checked, not copied: transformers' Whisper has these fixed.
REQUIRED_FLAGS = {
    "decoder/activation": 3,  # ctranslate2.specs.Activation.GELU (erf); transformers: activation_function="gelu"
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/alibi": 0,
    "decoder/start_from_zero_embedding": 0,
    "decoder/alibi_use_positive_positions": 0,
    "decoder/scale_alibi": 0,
    "decoder/embeddings/multiply_by_sqrt_depth": 0,
}
# Variables deliberately not converted: runtime options of CTranslate2's attention-returning decoding (which layer
# and whether to average heads); transformers takes the alignment heads from the generation config instead.
UNUSED_VARIABLES = ("decoder/alignment_heads", "decoder/alignment_layer")
MAX_INITIAL_TIMESTAMP_INDEX = 50  # 1 s at 0.02 s per timestamp token, as in OpenAI's decoding

_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


@dataclass
class CTranslate2Model:
    """The parsed content of a `model.bin`: header fields, variables (numpy, as stored) and aliases."""

    binary_version: int
    spec: str
    revision: int
    variables: dict = field(default_factory=dict)  # name -> np.ndarray in its stored dtype (bfloat16 as float32)
    dtypes: dict = field(default_factory=dict)  # name -> dtype name as stored ("float16", "int8", ...)
    aliases: dict = field(default_factory=dict)  # alias name -> target name


class _Reader:
    """Sequential little-endian reader over the bytes of a `model.bin`, with errors that say where it failed."""

    def __init__(self, data: bytes, path: str):
        self.data, self.path, self.offset = data, path, 0

    def take(self, num_bytes: int, what: str) -> memoryview:
        end = self.offset + num_bytes
        if end > len(self.data):
            raise ValueError(
                f"{self.path} is truncated: reading {what} needs {num_bytes} bytes at offset {self.offset}, "
                f"but the file has only {len(self.data) - self.offset} left (size {len(self.data)})."
            )
        view = memoryview(self.data)[self.offset : end]
        self.offset = end
        return view

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def string(self, what: str) -> str:
        (length,) = self.unpack("H", f"the length of {what}")
        raw = bytes(self.take(length, what))
        if length == 0 or raw[-1] != 0:
            raise ValueError(f"{self.path}: {what} at offset {self.offset - length} is not NUL-terminated.")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.path}: {what} at offset {self.offset - length} is not UTF-8 ({error}).") from None


def read_ctranslate2_model_bin(path: str) -> CTranslate2Model:
    """Parse a CTranslate2 `model.bin` with `struct` / numpy (no CTranslate2 needed).

    Raises:
        ValueError: for another binary version, a truncated file or trailing bytes, an unknown dtype code, a byte
            count that does not match the shape, a duplicated name, or an alias to a missing variable.
    """
    with open(path, "rb") as handle:
        reader = _Reader(handle.read(), path)
    (binary_version,) = reader.unpack("I", "the binary version")
    if binary_version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(
            f"{path} has CTranslate2 binary version {binary_version}; this converter reads version(s) "
            f"{', '.join(map(str, SUPPORTED_BINARY_VERSIONS))} (re-convert the model with a recent CTranslate2)."
        )
    model = CTranslate2Model(binary_version, reader.string("the spec name"), reader.unpack("I", "the revision")[0])
    (num_variables,) = reader.unpack("I", "the number of variables")
    for index in range(num_variables):
        name = reader.string(f"the name of variable {index}")
        (rank,) = reader.unpack("B", f"the rank of {name!r}")
        dims = reader.unpack(f"{rank}I", f"the shape of {name!r}") if rank else ()
        (dtype_code,) = reader.unpack("B", f"the dtype of {name!r}")
        (num_bytes,) = reader.unpack("I", f"the size of {name!r}")
        if dtype_code not in DTYPES:
            raise ValueError(
                f"{path}: variable {name!r} has unknown dtype code {dtype_code} (offset {reader.offset - 5}); known: "
                + ", ".join(f"{code} {dtype_name}" for code, (dtype_name, _) in DTYPES.items())
                + "."
            )
        dtype_name, np_dtype = DTYPES[dtype_code]
        expected = int(np.prod(dims, dtype=np.int64)) * np_dtype.itemsize
        if num_bytes != expected:
            raise ValueError(
                f"{path}: variable {name!r} of shape {list(dims)} and dtype {dtype_name} should hold {expected} bytes "
                f"but declares {num_bytes}."
            )
        array = np.frombuffer(reader.take(num_bytes, f"the data of {name!r}"), dtype=np_dtype).reshape(dims)
        if dtype_name == "bfloat16":  # the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if name in model.variables:
            raise ValueError(f"{path}: variable {name!r} is stored twice.")
        model.variables[name] = array
        model.dtypes[name] = dtype_name
    (num_aliases,) = reader.unpack("I", "the number of aliases")
    for index in range(num_aliases):
        alias, target = reader.string(f"alias {index}"), reader.string(f"the target of alias {index}")
        if target not in model.variables:
            raise ValueError(f"{path}: alias {alias!r} points to {target!r}, which is not stored.")
        model.aliases[alias] = target
    if reader.offset != len(reader.data):
        raise ValueError(
            f"{path} has {len(reader.data) - reader.offset} unexpected trailing bytes after the aliases "
            f"(offset {reader.offset} of {len(reader.data)}): not a CTranslate2 model.bin or a corrupted one."
        )
    return model


def dequantize_variables(model: CTranslate2Model) -> dict:
    """All variables and aliases as float32 / integer numpy arrays, quantised weights multiplied back.

    A quantised weight `w` (int8 or int16) comes with `w_scale`: int8 has one scale per output row (conv: per output
    channel), int16 a single one; `w = stored / scale`. The `_scale` entries are consumed and do not appear in the
    result. Raises `ValueError` for an integer tensor without scale, a scale of the wrong shape, or zero points
    (AWQ-style `_zero` variables), which this converter does not support.
    """
    variables = dict(model.variables)
    zeros = sorted(name for name in variables if name.endswith("_zero"))
    if zeros:
        raise ValueError(f"Zero-point quantisation (AWQ) is not supported; found {zeros}.")
    result = {}
    for name, value in variables.items():
        if name.endswith("_scale") and name[: -len("_scale")] in variables:
            continue
        scale = variables.get(name + "_scale")
        if scale is not None:
            if model.dtypes[name] not in ("int8", "int16"):
                raise ValueError(f"{name!r} has a scale but is stored as {model.dtypes[name]}, not int8/int16.")
            scale = scale.astype(np.float32)
            if model.dtypes[name] == "int8":
                if scale.shape != (value.shape[0],):
                    raise ValueError(f"{name!r} {list(value.shape)}: int8 scale of shape {list(scale.shape)}, "
                                     f"expected [{value.shape[0]}] (one per output row).")
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            elif scale.size != 1:
                raise ValueError(f"{name!r}: int16 scale should be one value, got shape {list(scale.shape)}.")
            value = value.astype(np.float32) / scale
        elif model.dtypes[name] in ("int8", "int16") and value.ndim > 0:
            raise ValueError(f"{name!r} is an {model.dtypes[name]} tensor of shape {list(value.shape)} without a "
                             f"{name + '_scale'!r} variable: cannot dequantise it.")
        elif value.dtype.kind == "f":
            value = value.astype(np.float32)
        result[name] = value
    for alias, target in model.aliases.items():
        result[alias] = result[target]
    return result


def _scalar(variables: dict, name: str) -> int:
    if name not in variables:
        raise ValueError(f"The model lacks the variable {name!r}; is it a CTranslate2 Whisper model?")
    value = variables[name]
    if value.size != 1:
        raise ValueError(f"{name!r} should be a single value, got shape {list(value.shape)}.")
    return int(value.reshape(()))


def _layer_count(variables: dict, stack: str) -> int:
    ids = sorted({int(m.group(2)) for name in variables if (m := _LAYER.match(name)) and m.group(1) == stack})
    if ids != list(range(len(ids))) or not ids:
        raise ValueError(f"The {stack} layers should be numbered 0..N-1 (N > 0); found {ids}.")
    return len(ids)


def _token_id(tokenizer: WhisperTokenizerFast, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"tokenizer.json lacks the Whisper special token {token!r}.")
    return token_id


def load_tokenizer(model_dir: str) -> WhisperTokenizerFast:
    """`WhisperTokenizerFast` from `model_dir/tokenizer.json`, with Whisper's special tokens declared as such.

    Declaring the added special tokens (`<|startoftranscript|>`, ..., `<|notimestamps|>`) as extra special tokens makes
    `skip_special_tokens` drop them and puts the first timestamp id right after the last of them, as in OpenAI's
    tokenizer (the timestamp tokens themselves are not in faster-whisper's tokenizer.json).
    """
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(path):
        raise ValueError(f"{model_dir} has no tokenizer.json; faster-whisper model folders ship one.")
    with open(path, encoding="utf-8") as handle:
        added = json.load(handle).get("added_tokens", [])
    special = [token["content"] for token in sorted(added, key=lambda t: t["id"]) if token.get("special")]
    return WhisperTokenizerFast(tokenizer_file=path, pad_token="<|endoftext|>", extra_special_tokens=special)


def _read_json(model_dir: str, name: str) -> dict:
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _check_vocabulary(model_dir: str, tokenizer: WhisperTokenizerFast, vocab_size: int) -> None:
    """If the folder has CTranslate2's vocabulary file, check it has one token per embedding row and agrees with
    the tokenizer on every token the tokenizer has."""
    tokens = None
    if os.path.isfile(os.path.join(model_dir, "vocabulary.txt")):
        with open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8") as handle:
            tokens = handle.read().split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
    elif os.path.isfile(os.path.join(model_dir, "vocabulary.json")):
        tokens = _read_json(model_dir, "vocabulary.json")
    if tokens is None:
        return
    if len(tokens) != vocab_size:
        raise ValueError(
            f"The vocabulary file of {model_dir} has {len(tokens)} tokens but the embeddings {vocab_size} rows."
        )
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tokenizer.json has {len(tokenizer)} tokens, more than the {vocab_size} embedding rows.")
    stored = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    different = [i for i, (a, b) in enumerate(zip(stored, tokens)) if a != b]
    if different:
        raise ValueError(
            f"tokenizer.json and the vocabulary file of {model_dir} disagree on {len(different)} ids, e.g. "
            + ", ".join(f"{i}: {stored[i]!r} vs {tokens[i]!r}" for i in different[:5])
            + "."
        )


def _projection_is_tied(variables: dict) -> bool:
    """Whether the output projection is (an alias of, or equal to) the token embeddings, as in OpenAI's Whisper."""
    projection = variables.get("decoder/projection/weight")
    return projection is None or np.array_equal(projection, variables["decoder/embeddings/weight"])


def build_whisper_config(variables: dict, tokenizer: WhisperTokenizerFast, ct2_config: dict) -> WhisperConfig:
    """The `WhisperConfig` of a (dequantised) CTranslate2 Whisper model: the architecture from the stored shapes and
    `num_heads` flags, the special token ids from the tokenizer, the suppressed tokens from CTranslate2's
    `config.json` (`ct2_config`; kept in the model config too, as OpenAI's checkpoints have them).

    Raises `ValueError` when a flag has a value that transformers' Whisper cannot represent (see `REQUIRED_FLAGS`)
    or a shape-defining variable is missing.
    """
    for name, required in REQUIRED_FLAGS.items():
        if name in variables and _scalar(variables, name) != required:
            raise ValueError(
                f"{name!r} is {_scalar(variables, name)}, but transformers' Whisper needs {required}: this is not a "
                "Whisper architecture this converter can map."
            )
    needed = ("encoder/conv1/weight", "encoder/position_encodings/encodings", "decoder/embeddings/weight",
              "decoder/position_encodings/encodings", "encoder/layer_0/ffn/linear_0/weight",
              "decoder/layer_0/ffn/linear_0/weight")
    missing = [name for name in needed if name not in variables]
    if missing:
        raise ValueError(f"Cannot infer the Whisper architecture: the model lacks {missing}.")
    d_model, num_mel_bins, _ = variables["encoder/conv1/weight"].shape
    eot = _token_id(tokenizer, "<|endoftext|>")
    sot = _token_id(tokenizer, "<|startoftranscript|>")
    return WhisperConfig(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=_layer_count(variables, "encoder"),
        decoder_layers=_layer_count(variables, "decoder"),
        encoder_attention_heads=_scalar(variables, "encoder/num_heads"),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads"),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        pad_token_id=eot,
        bos_token_id=sot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])) or None,
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])) or None,
        tie_word_embeddings=_projection_is_tied(variables),
    )


def build_generation_config(
    config: WhisperConfig, tokenizer: WhisperTokenizerFast, ct2_config: dict
) -> GenerationConfig:
    """Greedy-decoding defaults as OpenAI's checkpoints have them: Whisper's prompt tokens, the suppressed tokens of
    CTranslate2's `config.json`, and for multilingual models (vocabulary >= 51865) the language and task tokens."""
    is_multilingual = config.vocab_size >= 51865
    generation = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
    )
    generation.no_timestamps_token_id = _token_id(tokenizer, "<|notimestamps|>")
    generation.prev_sot_token_id = _token_id(tokenizer, "<|startofprev|>")
    generation.max_initial_timestamp_index = MAX_INITIAL_TIMESTAMP_INDEX
    generation.return_timestamps = False
    generation.is_multilingual = is_multilingual
    if ct2_config.get("alignment_heads"):
        generation.alignment_heads = [list(pair) for pair in ct2_config["alignment_heads"]]
    if is_multilingual:
        vocab = tokenizer.get_vocab()
        generation.lang_to_id = {f"<|{code}|>": vocab[f"<|{code}|>"] for code in LANGUAGES if f"<|{code}|>" in vocab}
        generation.task_to_id = {task: _token_id(tokenizer, f"<|{task}|>") for task in ("transcribe", "translate")}
    return generation


def convert_ctranslate2_state_dict(variables: dict, config: WhisperConfig) -> dict:
    """CTranslate2 variables (dequantised, aliases resolved) -> the state dict of `WhisperForConditionalGeneration`.

    Raises:
        ValueError: naming every transformers parameter left unfilled or mis-shaped and every CTranslate2 variable
            neither used, nor a checked flag, nor in `UNUSED_VARIABLES`.
    """
    used, state_dict = set(), {}
    d_model = config.d_model

    def take(name):
        if name not in variables:
            raise ValueError(f"The CTranslate2 model lacks {name!r}.")
        used.add(name)
        return torch.from_numpy(np.ascontiguousarray(variables[name]))

    def linear(ct2, hf, bias=True):
        state_dict[f"{hf}.weight"] = take(f"{ct2}/weight")
        if bias:
            state_dict[f"{hf}.bias"] = take(f"{ct2}/bias")

    def layer_norm(ct2, hf):
        state_dict[f"{hf}.weight"], state_dict[f"{hf}.bias"] = take(f"{ct2}/gamma"), take(f"{ct2}/beta")

    def fused(ct2, hf_names):
        """Split a fused projection row-wise into `d_model`-row pieces; k_proj takes no bias (see the module docs)."""
        weight, bias = take(f"{ct2}/weight"), take(f"{ct2}/bias")
        if weight.shape[0] != d_model * len(hf_names) or bias.shape != (weight.shape[0],):
            raise ValueError(f"{ct2} has shapes {list(weight.shape)} / {list(bias.shape)}; expected "
                             f"[{d_model * len(hf_names)}, {d_model}] / [{d_model * len(hf_names)}].")
        for index, hf in enumerate(hf_names):
            rows = slice(index * d_model, (index + 1) * d_model)
            state_dict[f"{hf}.weight"] = weight[rows]
            if not hf.endswith("k_proj"):
                state_dict[f"{hf}.bias"] = bias[rows]

    for stack, num_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        hf_stack = f"model.{stack}"
        for i in range(num_layers):
            ct2, hf = f"{stack}/layer_{i}", f"{hf_stack}.layers.{i}"
            layer_norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            fused(f"{ct2}/self_attention/linear_0", [f"{hf}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            if stack == "decoder":
                layer_norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                fused(f"{ct2}/attention/linear_1", [f"{hf}.encoder_attn.{p}" for p in ("k_proj", "v_proj")])
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
            layer_norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
        layer_norm(f"{stack}/layer_norm", f"{hf_stack}.layer_norm")
        state_dict[f"{hf_stack}.embed_positions.weight"] = take(f"{stack}/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    state_dict["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    projection = take("decoder/projection/weight") if "decoder/projection/weight" in variables else None
    if config.tie_word_embeddings:
        state_dict["proj_out.weight"] = state_dict["model.decoder.embed_tokens.weight"]
    else:
        state_dict["proj_out.weight"] = projection
    if "decoder/projection/bias" in variables and take("decoder/projection/bias").any():
        raise ValueError("'decoder/projection/bias' is not zero; transformers' Whisper output projection has no bias.")

    used.update(UNUSED_VARIABLES)
    used.update(name for name in REQUIRED_FLAGS if name in variables)  # checked in build_whisper_config
    used.update(("encoder/num_heads", "decoder/num_heads"))  # read in build_whisper_config
    unused = sorted(set(variables) - used)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in WhisperForConditionalGeneration(config).state_dict().items()}
    missing = sorted(set(expected) - {k for k, v in state_dict.items() if v is not None})
    extra = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict)
                   if state_dict[k] is not None and tuple(state_dict[k].shape) != expected[k])
    if unused or missing or extra or wrong:
        details = []
        if unused:
            details.append(f"CTranslate2 variables not used: {unused}")
        if missing:
            details.append(f"transformers parameters not filled: {missing}")
        if extra:
            details.append(f"keys transformers does not have: {extra}")
        if wrong:
            details.append("wrong shapes: " + ", ".join(
                f"{k} {list(state_dict[k].shape)} (expected {list(expected[k])})" for k in wrong))
        raise ValueError(
            f"The CTranslate2 model does not map onto WhisperForConditionalGeneration (d_model={d_model}, "
            f"{config.encoder_layers}+{config.decoder_layers} layers); " + "; ".join(details)
        )
    return state_dict


def convert_ctranslate2_whisper(
    model_dir: str, output_dir: str | None = None, dtype: torch.dtype = torch.float32
) -> WhisperForConditionalGeneration:
    """Load a CTranslate2 Whisper folder as a `WhisperForConditionalGeneration` (eval mode, `dtype` weights).

    With `output_dir`, also write the model (`save_pretrained`) and its `WhisperProcessor` there. Raises
    `ValueError` for a malformed `model.bin`, a non-Whisper spec, or a model that does not map exactly (see the
    module docstring).
    """
    ct2 = read_ctranslate2_model_bin(os.path.join(model_dir, "model.bin"))
    if ct2.spec != WHISPER_SPEC:
        raise ValueError(f"{model_dir}/model.bin holds a {ct2.spec!r}, not a {WHISPER_SPEC!r}.")
    variables = dequantize_variables(ct2)
    tokenizer = load_tokenizer(model_dir)
    ct2_config = _read_json(model_dir, "config.json")
    config = build_whisper_config(variables, tokenizer, ct2_config)
    _check_vocabulary(model_dir, tokenizer, config.vocab_size)
    state_dict = convert_ctranslate2_state_dict(variables, config)

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict({k: v.to(dtype) for k, v in state_dict.items()}, strict=True, assign=True)
    model.tie_weights()
    model.generation_config = build_generation_config(config, tokenizer, ct2_config)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=config.num_mel_bins),
                                     tokenizer=tokenizer)
        processor.save_pretrained(output_dir)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a CTranslate2 / faster-whisper Whisper model folder into a transformers checkpoint.",
        epilog="The folder needs model.bin and tokenizer.json (config.json for the suppressed tokens).",
    )
    parser.add_argument(
        "--model_dir", required=True, help="the CTranslate2 folder (model.bin, config.json, tokenizer.json)"
    )
    parser.add_argument("--output_dir", required=True, help="folder to write (created if needed)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                        help="dtype of the written weights (default float32)")
    args = parser.parse_args(argv)
    model = convert_ctranslate2_whisper(args.model_dir, args.output_dir, dtype=getattr(torch, args.dtype))
    config = model.config
    print(
        f"Converted {args.model_dir} -> {args.output_dir}: {model.num_parameters():,} parameters, "
        f"d_model={config.d_model}, layers={config.encoder_layers}+{config.decoder_layers}, "
        f"heads={config.encoder_attention_heads}, mel bins={config.num_mel_bins}, vocabulary={config.vocab_size}"
    )


if __name__ == "__main__":
    main()
