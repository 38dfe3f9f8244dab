"""One command-line dialect for every entry point: snake_case flags, `--output_dir`, `--model_name_or_path`.

Old spellings stay usable as hidden, deprecated aliases: an entry point rewrites its argument list before parsing,

    argv = rename_deprecated_flags(argv, {"--out": "--output_dir", "--model": "--model_name_or_path"})
    argv = rename_deprecated_flags(argv, kebab_case_aliases(parser))   # --max-sentences -> --max_sentences

and each old flag used prints one line (`warning: --out is deprecated; use --output_dir`) on stderr. The aliases are
not in `--help`. Rewriting the list, rather than adding hidden options, keeps `required=True` on the new flag working
for both `argparse.ArgumentParser` and `transformers.HfArgumentParser`, and catches an old flag before argparse's
prefix matching could take it for an abbreviation of a new one.
"""

import argparse
import sys
from collections.abc import Mapping, Sequence


def rename_deprecated_flags(argv: Sequence[str] | None, aliases: Mapping[str, str], prog: str | None = None) -> list[str]:
    """`argv` (default `sys.argv[1:]`) with every old flag of `aliases` (`{"--out": "--output_dir"}`) renamed.

    Both `--out DIR` and `--out=DIR` are renamed; values and everything after a bare `--` are left alone. One warning
    line per old flag used goes to stderr (prefixed with `prog` when given)."""
    for old, new in aliases.items():
        if not (old.startswith("--") and new.startswith("--")) or old == new:
            raise ValueError(f"A deprecated alias maps one long flag to another, not {old!r} -> {new!r}.")
    argv = list(sys.argv[1:] if argv is None else argv)
    renamed, warned = [], set()
    for index, token in enumerate(argv):
        if token == "--":
            renamed.extend(argv[index:])
            break
        flag, equals, value = token.partition("=")
        if token.startswith("--") and flag in aliases:
            if flag not in warned:
                warned.add(flag)
                prefix = f"{prog}: " if prog else ""
                print(f"{prefix}warning: {flag} is deprecated; use {aliases[flag]}", file=sys.stderr)
            token = aliases[flag] + equals + value
        renamed.append(token)
    return renamed


def kebab_case_aliases(parser: argparse.ArgumentParser) -> dict[str, str]:
    """`{"--max-sentences": "--max_sentences", ...}` for every snake_case long flag of `parser`."""
    return {
        flag.replace("_", "-"): flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and "_" in flag
    }
