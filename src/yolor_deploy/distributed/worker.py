"""`ShardWorker`: one model load, then shards of sources in, files and a completion record out.

Used as a Ray actor (`ray.remote(ShardWorker)`), but a plain class: nothing here imports Ray, so a shard runs
the same in a test without a cluster. Every file goes through the local engine's `ResultWriter` (same drawing,
encoding, label and COCO code), under placeholder stems that `merge.py` renames in source order.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import fs
from ..errors import InputError, first_line
from .shards import PLACEHOLDER_WIDTH, Item, Shard, record_path, shard_folder
from .uri import is_uri, read_uri_bytes


class ShardWorker:
    """`config`: model (path), detector (Detector keyword arguments), save_dir, save_img, save_txt, save_conf,
    key (the run key), max_pixels (or None), cwd (the driver's: relative source paths are read from there and
    written into the outputs as given, as the local engine does)."""

    def __init__(self, config: dict[str, Any]):
        if config.get("cwd") and os.path.isdir(config["cwd"]):
            os.chdir(config["cwd"])
        if config.get("max_pixels"):
            from ..runtime.inputs.opencv import set_max_pixels

            set_max_pixels(config["max_pixels"])
        from ..runtime import Detector

        self.config = config
        self.save_dir = Path(config["save_dir"])
        self.detector = Detector(config["model"], **config["detector"])

    def pid(self) -> int:
        return os.getpid()

    def run_shard(self, shard_dict: dict[str, Any]) -> dict[str, Any]:
        """Detect in every source of the shard, write its files and then its record; return a short summary
        (shard number, frames, failed sources, worker pid, seconds, calls in flight). Rerunning a shard rewrites
        the same files. Throughput mode keeps `streams` model calls in flight, decoding overlapping them."""
        from ..runtime.results.writer import ResultWriter

        t0 = time.perf_counter()
        shard = Shard.from_dict(shard_dict)
        c = self.config
        writer = ResultWriter(shard_folder(self.save_dir, shard), save_img=c["save_img"], save_txt=c["save_txt"],
                              save_conf=c["save_conf"], save_json=True)
        entries = {item.index: _entry(item) for item in shard.items}
        before = _stage_seconds(self.detector)
        try:
            pairs = _frames(shard.items, entries)  # throughput mode: decoding overlaps the calls in flight
            for frames, results, _ in self.detector.detect_batches(pairs, lambda pair: pair[0].image):
                for (frame, item), det in zip(frames, results):
                    n_coco = len(writer.coco)
                    writer.add(frame, det, stem=item.placeholder)
                    entry = entries[item.index]
                    entry["frames"] += 1
                    entry["coco"] += writer.coco[n_coco:]
                    entry["counts"].update(det.counts())
            writer.finish_video()
        except BaseException:
            writer.abort()
            raise
        folder = writer.save_dir
        for path in writer.written:
            rel = path.relative_to(folder).as_posix()
            index = int(path.name[1:PLACEHOLDER_WIDTH])
            entries[index]["files"].append(rel)
        after = _stage_seconds(self.detector)
        record = {"key": c["key"], "shard": shard.to_dict(), "worker_pid": os.getpid(),
                  "seconds": time.perf_counter() - t0,
                  "stage_seconds": {k: after[k] - before[k] for k in after},
                  "items": [entries[i.index] for i in shard.items]}
        fs.write_json(record_path(self.save_dir, shard), record)
        return {"shard": shard.number, "frames": sum(e["frames"] for e in record["items"]),
                "failed": sum(1 for e in record["items"] if not e["frames"]), "worker_pid": os.getpid(),
                "seconds": record["seconds"], "streams": self.detector.streams}


def _entry(item: Item) -> dict[str, Any]:
    return {"index": item.index, "source": item.spec, "frames": 0, "files": [], "coco": [], "counts": Counter(),
            "warnings": []}


def _stage_seconds(detector) -> dict[str, float]:
    t = detector.timings
    return {"pre": t.pre, "infer": t.infer, "post": t.post}


def _frames(items: tuple[Item, ...], entries: dict[int, dict[str, Any]]) -> Iterator[tuple[Any, Item]]:
    """Decoded frames of the items in order, each with its item; a source that cannot be read (or whose decoder
    fails in any way) is reported in its entry's warnings and skipped, as the local engine does."""
    from ..runtime.inputs.sources import MAX_FILE_BYTES, Frame, Source, decode_image, iter_frames

    for item in items:
        warn: Callable[[str], None] = entries[item.index]["warnings"].append
        try:
            if is_uri(item.spec):
                try:
                    image = decode_image(read_uri_bytes(item.spec, MAX_FILE_BYTES), item.spec)
                except InputError as e:
                    warn(f"{e}; skipped")
                    continue
                yield Frame(Source(Path(item.spec), "image"), image), item
            else:
                for frame in iter_frames([Source(Path(item.spec), item.kind)], warn):
                    yield frame, item
        except Exception as e:  # noqa: BLE001 - one file's decoder crash must not lose the shard
            warn(f"{item.spec}: {type(e).__name__}: {first_line(e)}; skipped")
