"""What every benchmark does with its result: print it as JSON and, given `--output FILE`, write it there too."""

import json
from pathlib import Path


def emit_json(result: dict, output: str | None = None) -> dict:
    """Print `result` as indented JSON and write it to `output` when given; returns `result`."""
    text = json.dumps(result, indent=1)
    print(text)
    if output:
        Path(output).write_text(text + "\n")
    return result
