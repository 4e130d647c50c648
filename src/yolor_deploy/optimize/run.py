"""`optimize_model`: build the candidates that make sense on this machine, time them interleaved, measure
their accuracy, choose the fastest within the mAP budget, and write report.json, report.png and best.*
into the output folder (each file atomically; work files in a temporary folder removed at the end)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract import RuntimeHint
from ..errors import InputError, YolorDeployError, first_line
from .accuracy import accuracy_set, detect_all, labels_from_detections, score, with_labels
from .build import build_artifact, open_candidate, write_best
from .candidates import REFERENCE, CandidateSpec, backend_names, plan_candidates
from .choose import Row, choose
from .guarded import DEFERRED, add_guarded
from .machine import Machine, detect_machine
from .report import report_doc
from .timing import time_interleaved

Progress = Callable[[str, int, int], None]


@dataclass
class OptimizeOptions:
    """`max_map_drop`: budget in points of mAP@0.5:0.95 (0.5 = 0.005); `backends`: onnxruntime/openvino;
    `candidates`: restrict to these names (the ORT fp32 reference is always built); `threads`: intra-op
    threads of every candidate (default: all cores); `runs`/`warmup`: interleaved timing rounds."""

    calib: Sequence[str | Path] = ()
    calib_size: int = 32
    val_images: Path | None = None
    val_labels: Path | None = None
    max_map_drop: float = 0.5
    backends: str | Sequence[str] | None = None
    candidates: Sequence[str] | None = None
    threads: int | None = None
    runs: int = 10
    warmup: int = 2
    accuracy: bool = True  # False: time only (speed studies on random weights); the fp32 reference is kept
    throughput: bool = False  # also images/s of each candidate in latency and throughput mode (`streams` in flight)
    streams: int | None = None  # throughput mode's calls in flight (default: one per core, at least 2)


def check_options(o: OptimizeOptions) -> None:
    if (o.val_images is None) != (o.val_labels is None) and o.val_labels is not None:
        raise InputError("--val-labels needs --val-images")
    for d in (o.val_images, o.val_labels):
        if d is not None and not Path(d).is_dir():
            raise InputError(f"{d}: no such folder")
    if not 0 <= o.max_map_drop <= 100:
        raise InputError(f"--max-map-drop {o.max_map_drop:g}: points of mAP@0.5:0.95, 0..100")
    if o.runs < 1 or o.warmup < 0 or o.calib_size < 1 or (o.threads is not None and o.threads < 1):
        raise InputError("--runs, --calib-size and --threads must be >= 1, --warmup >= 0")
    if o.streams is not None and not 1 <= o.streams <= 64:
        raise InputError(f"--streams {o.streams}: expected 1..64")


def optimize_model(model: str | Path, out_dir: str | Path, options: OptimizeOptions,
                   progress: Progress | None = None, machine: Machine | None = None) -> dict[str, Any]:
    """Run the whole search on the fp32 export `model`; returns the report (also written to
    `out_dir/report.json`)."""
    from ..fs import remove_stale_temps, temp_prefix
    from ..quantize.ort_qdq import calibration_images, check_quantizable, load_fp32_model
    from .chart import import_pyplot

    o = options
    check_options(o)
    import_pyplot()  # fail before the long part
    src, out = Path(model), Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    meta = check_quantizable(load_fp32_model(src), str(src), backend="openvino")
    machine = machine or detect_machine()
    plan = plan_candidates(machine, backend_names(o.backends), o.candidates)
    calib = calibration_images(o.calib, o.calib_size)
    aset = accuracy_set(calib, o.val_images, o.val_labels, meta.nc)
    threads = o.threads or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out / "report.json")  # work folders of killed runs (their PID is dead)
    work = Path(tempfile.mkdtemp(prefix=temp_prefix("optimize"), suffix=".ir.tmp", dir=out))
    try:
        rows, specs = _build_all(plan, src, calib, o.calib_size, work, threads, progress)
        runners = _open_all(rows, specs, threads)
        x = _sample_input(runners[REFERENCE], calib)
        timing = time_interleaved(runners, x, o.runs, o.warmup, progress)
        for r in rows:
            t = timing.get(r.name, {})
            if "error" in t:
                r.fail("failed", f"inference: {t['error']}")
                runners.pop(r.name, None)
            elif t:
                r.p50, r.p90 = round(t["p50"], 2), round(t["p90"], 2)
        if o.throughput:
            _measure_modes(rows, specs, runners, x, threads, o, progress)
        score_row = None
        if o.accuracy:
            aset, score_row = _measure_accuracy(rows, runners, aset, meta.names, progress, o.max_map_drop)
        add_guarded(rows, runners, src, calib, o, aset, meta.names, work, threads, x, score_row)
        reference = next(r for r in rows if r.name == REFERENCE)
        if not reference.ok:
            raise InputError(f"{src}: the fp32 reference could not be measured ({reference.reason})")
        best, why = choose(rows, reference, o.max_map_drop)
        if not o.accuracy:
            why = "accuracy not measured: the fp32 reference is kept"
        written = write_best(Path(best.file), RuntimeHint(**best.runtime), out)
        context = _context(src, machine, o, threads, aset, len(calib), tuple(x.shape))
        doc = report_doc(rows, best, why, written[0].name, context)
        _write_outputs(out, doc, rows, reference, o.max_map_drop, aset.metric, machine)
        return doc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_all(plan, src: Path, calib, calib_size: int, work: Path, threads: int, progress):
    rows: list[Row] = []
    specs: dict[str, CandidateSpec] = {}
    built: dict[tuple, tuple[Path | None, str, float]] = {}
    for i, (spec, skip) in enumerate(plan):
        row = Row.from_spec(spec)
        rows.append(row)
        specs[spec.name] = spec
        row.runtime = RuntimeHint(spec.backend, spec.infer_precision, threads).to_dict()
        if skip:
            row.fail("skipped", skip)
        elif spec.artifact == "nncf-acc":
            row.fail("skipped", DEFERRED)  # needs the scores of the others (`optimize.guarded`)
        else:
            if spec.artifact_key not in built:
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        path: Path | None = build_artifact(spec, src, calib, calib_size, work)
                    err = ""
                except Exception as e:  # noqa: BLE001 - a failing candidate is a row, never a crash
                    path, err = None, _reason(e)
                built[spec.artifact_key] = (path, err, time.perf_counter() - t0)
            path, err, secs = built[spec.artifact_key]
            row.build_s = round(secs, 2)
            if path is None:
                row.fail("failed", f"build: {err}")
            else:
                row.file = str(path)
                weights = path.with_suffix(".bin") if path.suffix == ".xml" else path
                row.size_mb = round(weights.stat().st_size / 1e6, 2)
        if progress:
            progress("build", i + 1, len(plan))
    return rows, specs


def _reason(e: BaseException) -> str:
    return first_line(e) if isinstance(e, YolorDeployError) else f"{type(e).__name__}: {first_line(e)}"


def _open_all(rows: list[Row], specs: dict[str, CandidateSpec], threads: int) -> dict[str, Any]:
    """A backend per built row (its own session / compiled model), opened as `Detector(best.*)` will."""
    runners: dict[str, Any] = {}
    for r in rows:
        if not r.ok:
            continue
        try:
            runners[r.name] = open_candidate(specs[r.name], r.file, threads)
        except Exception as e:  # noqa: BLE001
            r.fail("failed", f"load: {_reason(e)}")
    if REFERENCE not in runners:
        ref = next(r for r in rows if r.name == REFERENCE)
        raise InputError(f"the fp32 model cannot run in ONNX Runtime: {ref.reason}")
    return runners


def _measure_modes(rows: list[Row], specs, runners: dict[str, Any], x, threads: int, o: OptimizeOptions,
                   progress) -> None:
    """images/s of every timed row in latency and throughput mode (`optimize.throughput`)."""
    from ..runtime.backends.throughput import default_streams
    from .throughput import measure_modes

    streams = o.streams or default_streams()
    streamed: dict[str, Any] = {}
    for r in rows:
        if r.ok and r.name in runners:
            try:
                streamed[r.name] = open_candidate(specs[r.name], r.file, threads, streams)
            except Exception as e:  # noqa: BLE001 - the row keeps its latency; the mode column says why not
                r.throughput_error = f"load: {_reason(e)}"
    found = measure_modes(runners, streamed, x, max(2 * streams, o.runs), max(1, min(o.runs, 3)), streams, progress)
    for r in rows:
        m = found.get(r.name, {})
        if "error" in m:
            r.throughput_error = m["error"]
        elif m:
            r.latency_ips, r.throughput_ips = round(m["latency_ips"], 2), round(m["throughput_ips"], 2)
            r.streams = streams


def _sample_input(backend, calib: Sequence[Path]):
    """The model input for the first calibration image, preprocessed as `Detector` does."""
    from ..runtime import Detector
    from ..runtime.inputs.sources import read_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(backend).preprocess([read_image(calib[0])])[0].tensor


def _measure_accuracy(rows: list[Row], runners: dict[str, Any], aset, names, progress, budget: float):
    """Score every runnable row, the reference first (in agreement mode its detections are the truth), then
    each row's drop with its paired bootstrap interval over the images (`optimize.uncertainty`). Returns the
    accuracy set (with the reference's detections as labels in agreement mode) and `score_row(row, runner)`,
    which scores one more row the same way."""
    from ..runtime import Detector
    from .uncertainty import drop_interval

    order = sorted((r for r in rows if r.ok and r.name in runners), key=lambda r: r.name != REFERENCE)
    total, done = len(order) * len(aset.items), 0
    matches: dict[str, Any] = {}

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("accuracy", done, total)

    def measure(r: Row, runner, tick=None) -> None:
        nonlocal aset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dets, shapes = detect_all(Detector(runner, **aset.settings), aset.items, tick)
        if r.name == REFERENCE and not aset.labelled:
            labels = labels_from_detections(dets)
            if not any(len(lab) for lab in labels):
                raise InputError("the fp32 model detects nothing on the accuracy images (score >= 0.25): "
                                 "give --val-images and --val-labels")
            aset = with_labels(aset, labels)
        s, matches[r.name] = score(aset, dets, shapes, names)
        r.map50, r.map, r.detections = round(s["map50"], 6), round(s["map"], 6), int(s["detections"])
        r.score = r.map if aset.which == "map" else r.map50

    def interval(r: Row) -> None:
        iv = drop_interval(matches.get(REFERENCE) if aset.labelled else None, matches[r.name], aset.which)
        r.drop, r.drop_lo, r.drop_hi = round(iv.drop, 4), round(iv.lo, 4), round(iv.hi, 4)
        r.images_needed = iv.images_needed(budget) if budget > 0 else None

    for r in order:
        try:
            measure(r, runners[r.name], step)
        except Exception as e:  # noqa: BLE001 - a failing candidate is a row; the reference is needed
            if r.name == REFERENCE and isinstance(e, InputError):
                raise
            r.fail("failed", f"accuracy: {_reason(e)}")
    for r in rows:
        if r.name in matches and r.ok and r.name != REFERENCE:
            interval(r)

    def score_row(r: Row, runner) -> None:
        measure(r, runner)
        interval(r)

    return aset, score_row


def _context(src: Path, machine: Machine, o: OptimizeOptions, threads: int, aset, n_calib: int,
             shape: tuple) -> dict[str, Any]:
    return {"model": str(src), "machine": machine.cpu, "machine_summary": machine.summary(), "threads": threads,
            "budget_points": o.max_map_drop, "input": list(shape),
            "timing": {"runs": o.runs, "warmup": o.warmup, "interleaved": True, "stat": "ms, backend call only",
                       "modes": "images/s, best of interleaved rounds, backend calls only" if o.throughput else None},
            "accuracy": {"metric": aset.metric, "score": aset.which, "images": len(aset.items),
                         "labelled": aset.labelled, "interval": "paired bootstrap over images, 1000 resamples, 95%",
                         **aset.settings},
            "calibration_images": n_calib}


def _write_outputs(out: Path, doc: dict, rows, reference, budget: float, metric: str, machine: Machine) -> None:
    from ..fs import write_bytes, write_json
    from .chart import draw_chart

    png = draw_chart(rows, reference, budget, metric, f"{Path(doc['model']).name} on {machine.cpu.split(', ISA')[0]}")
    write_bytes(out / "report.png", png)
    write_json(out / "report.json", doc, indent=1)
