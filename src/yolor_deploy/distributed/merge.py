"""Merge complete shards into the outputs of the local engine: same names, same bytes, same order.

Walking the records in source order, each source that gave at least one frame claims its stem through the
same `ResultWriter.claim_stem` as a local run (a skipped source claims none, so later duplicates are named as
locally); its shard files are hard-linked (else copied) to the final names, atomically, and its COCO entries
appended; `predictions.json` is written once at the end. The shard files stay, so a rerun is a merge only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import fs
from .shards import PLACEHOLDER_WIDTH, Shard, shard_folder


@dataclass
class MergeResult:
    frames: int = 0
    sources: int = 0
    warnings: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    stage_seconds: dict[str, float] = field(default_factory=lambda: {"pre": 0.0, "infer": 0.0, "post": 0.0})


def merge_shards(save_dir: Path, shards: list[Shard], records: list[dict[str, Any]], save_img: bool,
                 save_txt: bool, save_conf: bool, save_json: bool) -> MergeResult:
    """Write the final outputs under `save_dir` from the shards' records (one per shard, same order)."""
    from ..runtime.results.writer import ResultWriter

    writer = ResultWriter(save_dir, save_img=save_img, save_txt=save_txt, save_conf=save_conf, save_json=save_json)
    out = MergeResult()
    for shard, record in zip(shards, records):
        folder = shard_folder(save_dir, shard)
        for k in out.stage_seconds:
            out.stage_seconds[k] += float(record.get("stage_seconds", {}).get(k, 0.0))
        for item in record["items"]:
            out.sources += 1
            out.warnings += item["warnings"]
            if not item["frames"]:
                continue
            stem = writer.claim_stem(Path(item["source"]).stem)  # as the local engine: Source.path.stem
            for rel in item["files"]:
                final = PurePosixPath(rel)
                final = final.with_name(stem + final.name[PLACEHOLDER_WIDTH:])
                target = save_dir / final
                fs.link_or_copy(folder / rel, target)
                writer.written.append(target)
            writer.coco += item["coco"]
            out.frames += item["frames"]
            out.counts.update(item["counts"])
    writer.close()
    return out
