"""Read run records into a tidy table. The analysis layer reads results only through this module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from peftbench.records import RECORD_NAME, RecordError, parse_record

ID_COLUMNS = ["run_id", "experiment", "status", "method", "model", "task", "budget", "seed"]


def iter_records(root: str | Path) -> list[dict[str, Any]]:
    """Every ``run.json`` below ``root``, sorted by path. A damaged one (empty, not valid JSON, not an object)
    is skipped with one line on stderr naming it: records are written atomically, so such a file was cut
    short by a disk or copy fault or edited by hand, and the rest of the table is still worth having."""
    records = []
    for path in sorted(Path(root).rglob(RECORD_NAME)):
        try:
            record = parse_record(path)
        except RecordError as error:
            print(f"peftbench: skipping {path}: {error.problem}", file=sys.stderr, flush=True)
            continue
        record["_path"] = str(path)
        records.append(record)
    return records


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {column: record.get(column) for column in ID_COLUMNS}
    metrics = record.get("metrics") or {}
    row["main_metric"] = metrics.get("main_metric")
    for kind in ("final", "best"):
        for name, value in (metrics.get(kind) or {}).items():
            row[f"{kind}/{name}"] = value
    parameters = record.get("parameters") or {}
    for name, value in parameters.items():
        row[f"params/{name}"] = value
    row["wall_time_s"] = record.get("wall_time_s")
    row["peak_memory_mb"] = (record.get("peak_memory_mb") or {}).get("cpu_rss")
    row["path"] = record["_path"]
    return row


def load(root: str | Path = "results", *, completed_only: bool = False) -> pd.DataFrame:
    """One row per run: identifiers, ``final/<metric>``, ``best/<metric>``, ``params/<kind>``, cost columns."""
    rows = [_row(record) for record in iter_records(root)]
    frame = pd.DataFrame(rows, columns=None if rows else ID_COLUMNS)
    if completed_only and not frame.empty:
        frame = frame[frame["status"] == "completed"].reset_index(drop=True)
    return frame
