"""The metrics log: one JSON object per line (``metrics.jsonl``) in the run folder.

Training records: ``{"step", "loss", "lr", "tokens", "time"}``; validation records:
``{"step", "val_loss", "val_bpb"}`` (losses in nats per byte, ``val_bpb`` in bits per byte). A
resumed run first drops the records written after its checkpoint, so the log reads as one
uninterrupted run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a log; a last line cut short by a crash is skipped."""
    if not Path(path).is_file():
        return []
    records = []
    for line in Path(path).read_text("utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Append-only JSONL writer (line-buffered, so a crash loses at most one line)."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        else:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(temporary, self.path)
        self.handle = open(self.path, "a", buffering=1, encoding="utf-8")

    def log(self, **record: Any) -> None:
        self.handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.handle.close()
