"""Held-out audio -> text retrieval of a trained Wav2Sem, next to the cascade reference, on the same utterances.

    python benchmarks/bench_retrieval.py --wav2sem DIR --data_dir CORPUS/LibriSpeech/dev-clean \
        --whisper whisper-tiny-en --num_utterances 100 --output_json OUT.json

For the first `--num_utterances` utterances of the split (sorted by id), every row ranks the teacher's sentence
vectors of all their transcripts by cosine similarity and counts how often the utterance's own transcript comes first
(R@1) or among the first five (R@5):
- `wav2sem`: the model's F_s from the audio (as `training/pretrain.py` evaluates it);
- `cascade`: Whisper's transcript of the audio (greedy, `--whisper`, a transformers checkpoint such as the one
  `modeling_wav2sem.convert_ctranslate2_whisper` writes), then the teacher's vector of that text;
- chance (1/N, 5/N). Predicting the training-set mean vector for every utterance retrieves at chance (the same
  vector ranks every transcript alike); `training/pretrain.py` reports its L1 and cosine.
Prints JSON (and writes `--output_json`), with the machine's CPU and the seconds each row took.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import AutoModel, WhisperForConditionalGeneration, WhisperProcessor  # noqa: E402

import modeling_wav2sem  # noqa: E402, F401  (registers the Auto classes)
from benchmarks.reporting import cpu_description, emit_json  # noqa: E402
from training.common.audio import decode_audio, normalize  # noqa: E402
from training.common.runtime import CpuThreads  # noqa: E402
from training.evaluation import retrieval_recall  # noqa: E402
from training.pretraining_data import TeacherEncoder, default_teacher_dir, load_openslr  # noqa: E402

TARGET_COLUMNS = {"cls": "target_cls", "mean": "target_mean"}


def utterances(folder: str, count: int) -> list[dict]:
    rows = sorted(load_openslr([folder]), key=lambda row: row["id"])
    if len(rows) < count:
        raise ValueError(f"{folder} has {len(rows)} utterances, fewer than --num_utterances {count}.")
    return rows[:count]


@torch.inference_mode()
def wav2sem_vectors(model, rows: list[dict]) -> torch.Tensor:
    vectors = []
    for row in tqdm(rows, desc="wav2sem", leave=False):
        audio = decode_audio(row["audio"])
        audio = normalize(audio) if model.config.normalizes_audio else audio
        vectors.append(model(torch.from_numpy(audio).float()[None]).semantic_embeds[0])
    return torch.stack(vectors)


@torch.inference_mode()
def transcripts(whisper_dir: str, rows: list[dict]) -> list[str]:
    processor = WhisperProcessor.from_pretrained(whisper_dir)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
    texts = []
    for row in tqdm(rows, desc="whisper", leave=False):
        features = processor(decode_audio(row["audio"]), sampling_rate=16000, return_tensors="pt").input_features
        tokens = model.generate(features, max_new_tokens=96)
        texts.append(processor.batch_decode(tokens, skip_special_tokens=True)[0].strip())
    return texts


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    def words(text):
        return "".join(c if c.isalnum() or c in " '" else " " for c in text.upper()).split()

    errors = total = 0
    for ref, hyp in zip(references, hypotheses):
        r, h = words(ref), words(hyp)
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        errors, total = errors + row[-1], total + len(r)
    return errors / max(total, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wav2sem", required=True, help="a trained Wav2Sem folder")
    p.add_argument("--data_dir", required=True, help="a LibriSpeech-layout split folder of held-out utterances")
    p.add_argument("--whisper", help="a transformers Whisper checkpoint for the cascade row (omit to skip it)")
    p.add_argument("--teacher", default=None, help="the teacher (default: the offline MiniLM)")
    p.add_argument("--num_utterances", type=int, default=100)
    p.add_argument("--output_json")
    args = p.parse_args(argv)
    CpuThreads()  # the free cores: torch's threads beside other busy processes are far slower than fewer

    rows = utterances(args.data_dir, args.num_utterances)
    model = AutoModel.from_pretrained(args.wav2sem).eval()
    column = TARGET_COLUMNS[model.config.target]
    teacher = TeacherEncoder(args.teacher or str(default_teacher_dir()))
    texts = [row["text"] for row in rows]
    targets = torch.from_numpy(teacher(texts)[column])
    n = len(rows)
    result = {"benchmark": "retrieval", "machine": cpu_description(), "threads": torch.get_num_threads(),
              "wav2sem": args.wav2sem, "data_dir": args.data_dir, "num_utterances": n, "target": model.config.target,
              "rows": {"chance": {"r@1": 1 / n, "r@5": min(5, n) / n}}}
    start = time.perf_counter()
    result["rows"]["wav2sem"] = {**retrieval_recall(wav2sem_vectors(model, rows), targets),
                                 "seconds": round(time.perf_counter() - start, 1)}
    if args.whisper:
        start = time.perf_counter()
        hypotheses = transcripts(args.whisper, rows)
        result["rows"]["cascade (Whisper transcript -> teacher)"] = {
            **retrieval_recall(torch.from_numpy(teacher(hypotheses)[column]), targets),
            "word_error_rate": round(word_error_rate(texts, hypotheses), 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
    emit_json(result, args.output_json)


if __name__ == "__main__":
    main()
