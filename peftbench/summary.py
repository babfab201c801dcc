"""The short table a run prints when it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_summary(record: dict[str, Any]) -> None:
    metrics, parameters = record.get("metrics", {}), record.get("parameters", {})
    print(f"\n{record['method']} on {record['model']} / {record['task']} (budget {record['budget']}, "
          f"seed {record['seed']}): {record['status']}")
    print(f"{'metric':<28}{'final':>10}{'best':>10}")
    for name, value in metrics.get("final", {}).items():
        best = metrics.get("best", {}).get(name)
        print(f"{name:<28}{value:>10.4f}{'' if best is None else f'{best:>10.4f}'}")
    print(f"trainable parameters: {parameters.get('trainable', 0):,} (adapter {parameters.get('adapter', 0):,}, "
          f"head {parameters.get('head', 0):,}); effective: {parameters.get('effective', 0):,}")
    print(f"wall time {record.get('wall_time_s')} s, peak memory {record.get('peak_memory_mb', {}).get('cpu_rss')} MB")
    results_dir = Path(record["config"]["paths"]["results_dir"])
    print(f"record: {results_dir / record['experiment'] / record['run_id'] / 'run.json'}")
