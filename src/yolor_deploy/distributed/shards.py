"""The unit of distributed work: a shard, a fixed run of consecutive sources from the ordered source list.

Shard `n` holds sources `n*size .. (n+1)*size - 1`, so the assignment depends only on the list and the size.
A worker writes a shard's files under `SAVE_DIR/.shards/NNNNNN/` with placeholder stems (`i000000042.jpg` for
source 42), then its record `SAVE_DIR/.shards/NNNNNN.json`, atomically and last: the record is the completion
marker. A shard is reused by a later run when its record names the same sources and the same run key (model
bytes and every setting that changes the files), so rerunning into the same folder resumes. No torch, no Ray.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARDS_DIR = ".shards"
PLACEHOLDER_WIDTH = 10  # "i" + 9 digits


@dataclass(frozen=True)
class Item:
    """One source: its global `index` in the ordered list, a local path or a URI, "image" or "video"."""

    index: int
    spec: str
    kind: str

    @property
    def placeholder(self) -> str:
        """The stem its files carry inside the shard folder (the real stem is claimed at merge time)."""
        return f"i{self.index:09d}"


@dataclass(frozen=True)
class Shard:
    number: int
    items: tuple[Item, ...]

    @property
    def name(self) -> str:
        return f"{self.number:06d}"

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "items": [[i.index, i.spec, i.kind] for i in self.items]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Shard:
        return cls(int(d["number"]), tuple(Item(int(k), str(s), str(t)) for k, s, t in d["items"]))


def plan_shards(items: list[Item], shard_size: int) -> list[Shard]:
    """Consecutive runs of `shard_size` items (the last may be shorter)."""
    if shard_size < 1:
        raise ValueError(f"shard size {shard_size}: must be at least 1")
    return [Shard(n, tuple(items[k:k + shard_size])) for n, k in enumerate(range(0, len(items), shard_size))]


def shard_folder(save_dir: Path, shard: Shard) -> Path:
    return save_dir / SHARDS_DIR / shard.name


def record_path(save_dir: Path, shard: Shard) -> Path:
    return save_dir / SHARDS_DIR / f"{shard.name}.json"


def run_key(model_sha256: str, settings: dict[str, Any]) -> str:
    """A digest of what decides a shard's files: the model's bytes and the detection and output settings."""
    text = json.dumps({"model": model_sha256, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_complete_record(save_dir: Path, shard: Shard, key: str) -> dict[str, Any] | None:
    """The shard's record when it is complete for this run (same key, same sources, its files present), else None."""
    path = record_path(save_dir, shard)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or record.get("shard") != shard.to_dict():
        return None
    folder = shard_folder(save_dir, shard)
    files = [f for item in record.get("items", []) for f in item.get("files", [])]
    return record if all((folder / f).is_file() for f in files) else None
