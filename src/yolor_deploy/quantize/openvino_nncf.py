"""fp32 ONNX export -> OpenVINO int8 IR with NNCF post-training quantization.

OpenVINO cannot take ONNX Runtime's QDQ file (it crashed compiling one, ../shared/spec), so its int8
comes from its own tool: NNCF inserts FakeQuantize nodes into the OpenVINO model, calibrated on the
same preprocessed batches as the ORT path. The decode and any NMS graph (`quantize.tail_nodes`)
are an ignored scope, as in the ORT path: quantizing the box decode destroys the boxes. NNCF's
`PERFORMANCE` preset: symmetric int8 weights (per channel) and activations, what the CPU plugin
runs fastest.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..contract import ModelMetadata
from ..errors import ExportError, InputError, first_line

NNCF_TAG = "int8-nncf"


def import_nncf():
    try:
        import nncf
    except ImportError:
        raise InputError("OpenVINO int8 needs NNCF: pip install 'yolor-deploy[openvino]'") from None
    return nncf


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs INFO lines and draws its own progress bars on stdout: keep our output clean."""
    nncf = import_nncf()
    before = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield nncf
    finally:
        nncf.set_log_level(before or logging.INFO)


@dataclass
class AccuracyControl:
    """NNCF's quantization with accuracy control: `validate(compiled_model, items) -> (metric, metric per item)`
    (higher is better) on `items`; layers go back to float, the most harmful first, until the metric is at most
    `max_drop` (absolute, the metric's own units) below the float model's, or `max_iterations` reverts were tried.
    Layers are ranked on the `ranking_subset` items where int8 loses most (NNCF validates once per quantized layer
    group there). `failures` collects what `validate` raised (NNCF would otherwise quietly switch to comparing
    raw outputs)."""

    items: Sequence[Any]
    validate: Callable[[Any, Iterable[Any]], tuple[float, list[float]]]
    max_drop: float
    max_iterations: int = 30
    ranking_subset: int = 25
    failures: list[str] = field(default_factory=list)

    def guarded(self, model, items) -> tuple[float, list[float]]:
        try:
            return self.validate(model, items)
        except Exception as e:
            self.failures.append(f"{type(e).__name__}: {first_line(e)}")
            raise


def quantize_to_ir(model: onnx.ModelProto, batches: list[np.ndarray], keep_float: list[str],
                   metadata: ModelMetadata, workdir: str | Path, preset: str = "performance",
                   accuracy: AccuracyControl | None = None) -> tuple[Path, dict]:
    """Quantize `model` (fp32, nodes named) with NNCF on `batches`, the nodes `keep_float` ignored; save
    `workdir/model.xml` (+ .bin) with `metadata` in rt_info. `preset`: NNCF's "performance" (symmetric
    activations) or "mixed" (asymmetric activations). `accuracy`: quantize with accuracy control (layers kept
    in float where int8 costs too much). Returns (xml path, op type counts)."""
    from ..formats.openvino_ir import read_onnx, save_ir

    ov_model = fuse_activations(read_onnx(model, workdir))
    with _quiet_nncf() as nncf:
        common = dict(subset_size=len(batches), preset=getattr(nncf.QuantizationPreset, preset.upper()),
                      ignored_scope=nncf.IgnoredScope(names=keep_float, validate=False))
        try:
            if accuracy is None:
                q = nncf.quantize(ov_model, nncf.Dataset(batches), **common)
            else:
                from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

                q = nncf.quantize_with_accuracy_control(
                    ov_model, nncf.Dataset(batches), nncf.Dataset(list(accuracy.items)), accuracy.guarded,
                    max_drop=accuracy.max_drop, drop_type=nncf.DropType.ABSOLUTE,
                    advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                        max_num_iterations=accuracy.max_iterations,
                        ranking_subset_size=min(accuracy.ranking_subset, len(accuracy.items))),
                    **common)
        except Exception as e:  # noqa: BLE001 - NNCF raises many types; report one line
            raise ExportError(f"NNCF quantization failed: {first_line(e)}") from None
        if accuracy is not None and accuracy.failures:
            raise ExportError(f"NNCF accuracy control: the validation failed ({accuracy.failures[0]})")
    xml = save_ir(q, metadata, workdir)
    return xml, dict(Counter(op.get_type_name() for op in q.get_ops()))


def fuse_activations(ov_model):
    """OpenVINO's offline (MOC) fusions, constant folding off, before NNCF sees the model: the export's
    SiLU, `x * Sigmoid(x)`, becomes one Swish op. Without it NNCF quantizes both inputs of the Multiply
    (three FakeQuantize per SiLU instead of one, 441 vs 159 on yolor-p6), the CPU plugin cannot fuse the
    activation into the int8 convolution, and the SiLUs run as separate f32 kernels (19% of the int8
    time on yolor-p6 @640; 2.15x -> 2.69x over ONNX Runtime fp32 in one interleaved run). Node names,
    hence the ignored decode scope, are kept."""
    from openvino._offline_transformations import apply_moc_transformations

    apply_moc_transformations(ov_model, cf=False)
    return ov_model


def float_tail_is_kept(xml: str | Path, keep_float: list[str]) -> bool:
    """True when no FakeQuantize feeds a node of `keep_float` in the saved IR (checked, not assumed)."""
    from ..formats.openvino_ir import import_openvino

    ov = import_openvino()
    names = set(keep_float)
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_friendly_name() in names:
            for i in range(op.get_input_size()):
                if op.input_value(i).get_node().get_type_name() == "FakeQuantize":
                    return False
    return True


def check_ir_output(out: Path) -> None:
    if out.suffix.lower() != ".xml":
        raise InputError(f"{out}: an OpenVINO int8 model is an IR: give an output ending in .xml "
                         "(its .bin goes beside it)")
