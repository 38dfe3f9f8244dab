"""`metrics.jsonl`: one JSON object per logging event, rewritten on resume so that every step is logged once."""

import json
import math
import os
from pathlib import Path


class JsonLinesLogger:
    """Appends one JSON object per logging event (main process only)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def drop_after(self, step: int):
        """Remove the records of steps after `step`, and a record cut short by a kill, so that a run resumed at `step`
        logs each later step once. The file is rewritten atomically."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text().splitlines(keepends=True) if _record_step(line) <= step]
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text("".join(kept))
        os.replace(temporary, self.path)

    def log(self, record: dict):
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _record_step(line: str) -> float:
    """The step of a metrics.jsonl line; infinity for a line that is not a complete record."""
    try:
        return json.loads(line)["step"] if line.endswith("\n") else math.inf
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf
