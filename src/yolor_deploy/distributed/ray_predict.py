"""`predict --engine ray`: the local engine's outputs, computed by a pool of Ray actors in resumable shards.

Sources (local files, folders, globs, or URIs pyarrow reads) are listed in the local engine's order and cut
into shards of `shard_size`; shards already complete in `save_dir` are reused, the others run on the actor
pool (`pool.py`), and all are merged in source order (`merge.py`). Without an address a local Ray sized to the
machine is started and stopped here.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, YolorDeployError
from .shards import Item, plan_shards, read_complete_record, run_key
from .uri import is_uri, list_uri_images

DEFAULT_SHARD_SIZE = 64


@dataclass
class RayPredictResult:
    save_dir: Path
    sources: int
    frames: int
    warnings: list[str]
    counts: Counter
    shards_run: int
    shards_reused: int
    workers: int
    threads: int
    seconds: float  # wall time of the shards run now (0 when all were reused)
    frames_run: int  # frames computed now
    worker_pids: set[int] = field(default_factory=set)
    stage_ms: dict[str, float] = field(default_factory=dict)  # per frame, over all shards
    backend: str = ""
    imgsz: tuple[int, int] = (0, 0)


def resolve_items(specs: Sequence[str | Path]) -> list[Item]:
    """Every source in the local engine's order (`resolve_sources` per argument), URIs listed by pyarrow."""
    from ..runtime.inputs.sources import IMAGE_SUFFIXES, resolve_sources

    found: list[tuple[str, str]] = []
    for spec in map(str, specs):
        if is_uri(spec):
            found += [(u, "image") for u in list_uri_images(spec, IMAGE_SUFFIXES)]
        else:
            found += [(str(s.path), s.kind) for s in resolve_sources([spec])]
    return [Item(k, spec, kind) for k, (spec, kind) in enumerate(found)]


def predict_with_ray(model: str | Path, sources: Sequence[str | Path], save_dir: str | Path,
                     detector: dict[str, Any] | None = None, *, save_img: bool = True, save_txt: bool = False,
                     save_conf: bool = False, save_json: bool = False, num_workers: int | None = None,
                     ray_address: str | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                     max_pixels: int | None = None, progress: bool = True,
                     on_shard_done: Callable[[dict[str, Any]], None] | None = None) -> RayPredictResult:
    """Detect in `sources` with `model` on Ray and write the local engine's outputs into `save_dir`.

    `detector`: Detector keyword arguments (conf_thres, iou_thres, imgsz, batch_size, threads, ...); threads
    defaults to the cluster's CPUs // workers. Rerunning into the same `save_dir` reuses its complete shards.
    YolorDeployError when a shard still fails after Ray's retries (the complete ones are kept for a rerun).
    """
    from .. import fs
    from ..runtime import Detector

    if shard_size < 1:
        raise InputError(f"--shard-size {shard_size}: must be at least 1")
    if num_workers is not None and num_workers < 1:
        raise InputError(f"--num-workers {num_workers}: must be at least 1")
    save_dir, model = Path(save_dir).absolute(), Path(model).absolute()
    items = resolve_items(sources)
    options = dict(detector or {})
    # fails here, in one line, on a bad model or option
    probe = Detector(model, **{**options, "threads": 1, "mode": "latency"})
    backend, imgsz = probe.backend.name, probe.imgsz
    del probe
    settings = {k: v for k, v in options.items() if k not in ("threads", "mode", "streams")}  # same outputs
    settings.update(save_img=save_img, save_txt=save_txt, save_conf=save_conf, max_pixels=max_pixels)
    key = run_key(fs.file_sha256(model) if model.is_file() else str(model), settings)
    shards = plan_shards(items, shard_size)
    records = [read_complete_record(save_dir, s, key) for s in shards]
    todo = [s for s, r in zip(shards, records) if r is None]
    outcome, size, seconds = _run(model, options, save_dir, todo, key, save_img, save_txt, save_conf, max_pixels,
                                  num_workers, ray_address, progress, on_shard_done)
    if outcome is not None and outcome.failed:
        shard, why = outcome.failed[0]
        raise YolorDeployError(f"{len(outcome.failed)} of {len(shards)} shards failed after Ray's retries (shard "
                               f"{shard.name}: {why}); the complete ones are kept in {save_dir}/.shards: rerun "
                               f"the same command to finish")
    records = [r or read_complete_record(save_dir, s, key) for s, r in zip(shards, records)]
    if any(r is None for r in records):
        raise YolorDeployError(f"{save_dir}: a shard reported complete has no valid record (disk full, or another "
                               f"run writing into the same folder?); rerun the command")
    return _merge(save_dir, shards, records, save_img, save_txt, save_conf, save_json, outcome, size, seconds,
                  len(shards) - len(todo), backend, imgsz)


def _run(model, options, save_dir, todo, key, save_img, save_txt, save_conf, max_pixels, num_workers,
         ray_address, progress, on_shard_done):
    """Run the shards still to do on a pool sized to the cluster; (outcome, pool size, seconds) or Nones."""
    from .cluster import ray_session, size_pool
    from .pool import run_shards
    from .progress import shard_progress

    if not todo:
        return None, None, 0.0
    with ray_session(ray_address):
        size = size_pool(num_workers, options.get("threads"))
        config = {"model": str(model), "detector": worker_detector_options(options, size),
                  "save_dir": str(save_dir), "save_img": save_img, "save_txt": save_txt, "save_conf": save_conf,
                  "key": key, "max_pixels": max_pixels, "cwd": os.getcwd()}
        t0 = time.perf_counter()
        with shard_progress(sum(len(s.items) for s in todo), enabled=progress) as advance:
            def done(summary: dict[str, Any]) -> None:
                advance(summary["frames"] + summary["failed"])
                if on_shard_done is not None:
                    on_shard_done(summary)

            outcome = run_shards(config, todo, size, done)
        return outcome, size, time.perf_counter() - t0


def worker_detector_options(options: dict[str, Any], size) -> dict[str, Any]:
    """A worker's Detector keyword arguments: latency mode runs one call at a time on the worker's threads;
    throughput mode shares its CPUs among `streams` calls in flight (default one per CPU, at least 2), each
    on CPUs // streams threads unless `threads` was given."""
    if options.get("mode") != "throughput":
        return {**options, "threads": size.threads}
    cpus = max(1, int(size.cpus_per_worker))
    streams = int(options.get("streams") or max(2, cpus))
    return {**options, "streams": streams, "threads": options.get("threads") or max(1, cpus // streams)}


def _merge(save_dir, shards, records, save_img, save_txt, save_conf, save_json, outcome, size, seconds,
           reused, backend, imgsz) -> RayPredictResult:
    from .merge import merge_shards

    merged = merge_shards(save_dir, shards, records, save_img, save_txt, save_conf, save_json)
    if merged.frames == 0:
        raise InputError(f"no readable image or video frame among {merged.sources} input(s)")
    done = outcome.done if outcome is not None else []
    n = max(merged.frames, 1)
    return RayPredictResult(
        save_dir=save_dir, sources=merged.sources, frames=merged.frames, warnings=merged.warnings,
        counts=merged.counts, shards_run=len(done), shards_reused=reused,
        workers=size.workers if size else 0, threads=size.threads if size else 0, seconds=seconds,
        frames_run=sum(d["frames"] for d in done), worker_pids={d["worker_pid"] for d in done},
        stage_ms={k: 1000 * v / n for k, v in merged.stage_seconds.items()}, backend=backend, imgsz=imgsz)
