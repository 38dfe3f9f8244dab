"""The shared command-line dialect: deprecated spellings still work, warn once, and stay out of --help."""

import argparse
import dataclasses

import pytest
from transformers import HfArgumentParser

from training.common.cli import kebab_case_aliases, rename_deprecated_flags


def test_old_flags_are_renamed_in_both_forms_and_warn_once(capsys):
    argv = ["--out", "a", "--model=m", "--out", "b", "--audio", "--out.wav"]
    renamed = rename_deprecated_flags(argv, {"--out": "--output_dir", "--model": "--model_name_or_path"}, prog="x")
    assert renamed == ["--output_dir", "a", "--model_name_or_path=m", "--output_dir", "b", "--audio", "--out.wav"]
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["x: warning: --out is deprecated; use --output_dir",
                     "x: warning: --model is deprecated; use --model_name_or_path"]


def test_new_flags_pass_silently_and_nothing_after_a_bare_double_dash_is_touched(capsys):
    argv = ["--output_dir", "o", "--", "--out", "x"]
    assert rename_deprecated_flags(argv, {"--out": "--output_dir"}) == argv
    assert capsys.readouterr().err == ""


def test_an_alias_satisfies_a_required_flag_of_argparse_and_hfargumentparser(capsys):
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    assert parser.parse_args(rename_deprecated_flags(["--out", "d"], {"--out": "--output_dir"})).output_dir == "d"

    @dataclasses.dataclass
    class Arguments:
        model_name_or_path: str

    (args,) = HfArgumentParser(Arguments).parse_args_into_dataclasses(
        args=rename_deprecated_flags(["--model", "m"], {"--model": "--model_name_or_path"}))
    assert args.model_name_or_path == "m"


def test_kebab_case_aliases_cover_every_snake_case_long_flag():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_sentences", type=int)
    parser.add_argument("--no_preview", action="store_true")
    parser.add_argument("--seed", "-s", type=int)
    aliases = kebab_case_aliases(parser)
    assert aliases == {"--max-sentences": "--max_sentences", "--no-preview": "--no_preview"}
    args = parser.parse_args(rename_deprecated_flags(["--max-sentences", "3", "--no-preview"], aliases))
    assert (args.max_sentences, args.no_preview) == (3, True)


@pytest.mark.parametrize("aliases", [{"-o": "--output_dir"}, {"--out": "--out"}])
def test_an_alias_that_is_not_one_long_flag_to_another_is_refused(aliases):
    with pytest.raises(ValueError, match="one long flag to another"):
        rename_deprecated_flags([], aliases)
