"""The accuracy-guarded int8 candidate (`ov-int8-acc`): NNCF's quantization with accuracy control, built only
when plain NNCF int8 (`ov-int8`) is not proven within the budget.

NNCF quantizes, measures the drop with our own metric on the accuracy images (mAP@0.5:0.95 against labels, or
agreement AP@0.5 against fp32's detections: `optimize.accuracy`, the same score the budget applies to), ranks
the quantized layers by what each costs (per-image scores), and puts the worst back in float until the drop is
at most half the budget (the choice then needs the upper end of the bootstrap interval within the whole
budget: half leaves room for it). The candidate is timed interleaved with the fp32 reference again, and its
p50 scaled by the reference's ratio between that run and the main one, so its speed-up compares like the others.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import YolorDeployError, first_line
from .accuracy import AccuracySet, detect_all, score
from .candidates import REFERENCE
from .choose import Row

NAME = "ov-int8-acc"
PLAIN = "ov-int8"


def why_not_needed(rows: dict[str, Row], budget: float, accuracy: bool) -> str | None:
    """Why the guarded candidate is not built (None: build it)."""
    plain = rows.get(PLAIN)
    if not accuracy:
        return "accuracy not measured"
    if budget <= 0:
        return "budget 0: fp32 candidates only"
    if plain is not None and plain.ok and plain.drop_hi is not None and plain.drop_hi <= budget:
        return f"not needed: plain int8 ({PLAIN}) is within the budget"
    return None


def validator(aset: AccuracySet, names, metadata_text: str | None) -> Callable[[Any, Iterable[Any]],
                                                                               tuple[float, list[float]]]:
    """NNCF's `validation_fn`: (score, score per image) of a compiled model on any of `aset`'s items, through
    `Detector` with the accuracy set's NMS settings (what `optimize` scores every candidate with)."""
    from ..runtime import Detector
    from ..runtime.backends.openvino import OpenVINOBackend

    which = 0 if aset.which == "map50" else 1

    def validate(compiled, items: Iterable[Any]) -> tuple[float, list[float]]:
        items = list(items)
        backend = OpenVINOBackend.from_compiled(compiled, f"{NAME} (NNCF)", metadata_text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = Detector(backend, conf_thres=aset.settings["conf_thres"], iou_thres=aset.settings["iou_thres"])
            dets, shapes = detect_all(det, items)
        s, m = score(AccuracySet(items, aset.labelled), dets, shapes, names)
        return float(s[aset.which]), [m.ap([i])[which] for i in range(len(items))]

    return validate


def build_guarded(src: Path, calib, calib_size: int, aset: AccuracySet, names, budget: float, work: Path) -> Path:
    """The accuracy-controlled NNCF int8 IR of `src`, into `work`."""
    from ..formats.onnx_meta import metadata_text
    from ..quantize.openvino_nncf import AccuracyControl
    from ..quantize.ort_qdq import QuantizeOptions, load_fp32_model, quantize_onnx

    control = AccuracyControl(aset.items, validator(aset, names, metadata_text(load_fp32_model(src))),
                              max_drop=budget / 2 / 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_onnx(src, work / f"{NAME}.xml", calib, QuantizeOptions(calib_size=calib_size,
                                                                               backend="openvino"),
                             accuracy=control).path


def add_guarded(rows: list[Row], runners: dict[str, Any], src: Path, calib, o, aset: AccuracySet, names,
                work: Path, threads: int, x, score_row: Callable[[Row, Any], None] | None) -> None:
    """Build, time and score (`score_row`, None when accuracy is not measured) the guarded row when it is planned
    and needed; else say why not in its row."""
    from .build import open_candidate
    from .candidates import CANDIDATES
    from .timing import time_interleaved

    by_name = {r.name: r for r in rows}
    row = by_name.get(NAME)
    if row is None or row.status != "skipped" or row.reason != DEFERRED:
        return  # not asked for, or the machine cannot run it (its row says why)
    why = why_not_needed(by_name, o.max_map_drop, score_row is not None)
    if why is not None or score_row is None:  # (the second: accuracy not measured, `why` says so)
        row.reason = why or "accuracy not measured"
        return
    try:
        t0 = time.perf_counter()
        path = build_guarded(src, calib, o.calib_size, aset, names, o.max_map_drop, work)
        row.status, row.reason, row.file = "ok", "", str(path)
        row.build_s = round(time.perf_counter() - t0, 2)
        row.fake_quantize = fake_quantize_count(path)
        plain = by_name.get(PLAIN)
        if plain is not None and plain.ok and plain.file.endswith(".xml"):
            plain.fake_quantize = fake_quantize_count(Path(plain.file))
        row.size_mb = round(path.with_suffix(".bin").stat().st_size / 1e6, 2)
        runner = open_candidate(next(c for c in CANDIDATES if c.name == NAME), path, threads)
        t = time_interleaved({REFERENCE: runners[REFERENCE], NAME: runner}, x, o.runs, o.warmup)
        if "error" in t[NAME]:
            raise YolorDeployError(f"inference: {t[NAME]['error']}")
        scale = (by_name[REFERENCE].p50 or t[REFERENCE]["p50"]) / t[REFERENCE]["p50"]  # onto the main run's clock
        row.p50, row.p90 = round(t[NAME]["p50"] * scale, 2), round(t[NAME]["p90"] * scale, 2)
        runners[NAME] = runner
        score_row(row, runner)
    except Exception as e:  # noqa: BLE001 - a failing candidate is a row, never a crash
        row.fail("failed", f"{type(e).__name__}: {first_line(e)}" if not isinstance(e, YolorDeployError)
                 else first_line(e))
        runners.pop(NAME, None)


def fake_quantize_count(xml: Path) -> int:
    from ..formats.openvino_ir import import_openvino

    return sum(op.get_type_name() == "FakeQuantize" for op in import_openvino().Core().read_model(str(xml)).get_ops())


DEFERRED = "built after the others are scored, when plain int8 misses the budget"
