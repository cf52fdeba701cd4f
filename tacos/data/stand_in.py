"""What a dry run forecasts when the pool is not readable here (no file, hub offline) but its size is known
(dataset.expected_rows): rows like the bundled sample's, as many as the pool has."""
from __future__ import annotations

import dataclasses

from tacos.data.loaders import load_records, sample_pool_path
from tacos.records import Record


def stand_in_pool(n_rows: int, limit: int | None = None) -> list[Record]:
    """For a dry run that cannot read the pool here (no file, hub offline): the bundled sample's rows, repeated to the
    pool's known size (each copy made distinct, so no forecast counts it as a repeated call): an estimate."""
    sample = load_records(sample_pool_path())
    n = min(int(n_rows), int(limit)) if limit else int(n_rows)
    out = []
    for k in range(n):
        r = sample[k % len(sample)]
        copy = k // len(sample)
        out.append(r if copy == 0 else dataclasses.replace(r, id=f"{r.id}-{copy}", index=k,
                                                           instruction=f"{r.instruction} ({copy})"))
    return out
