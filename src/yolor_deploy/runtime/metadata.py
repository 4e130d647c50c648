"""The `yolor_deploy` metadata an export writes into `metadata_props`, read back without torch.

The value is JSON (read with `json.loads`, never `eval`). A model without it (someone else's
export) still runs, with defaults chosen by `fallback_metadata` and a warning saying so.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

from ..errors import InputError

METADATA_KEY = "yolor_deploy"
DEFAULT_STRIDES = (8, 16, 32, 64)
NMS_MODES = ("none", "onnx", "trt")


class MetadataWarning(UserWarning):
    """The model carries no (or partial) yolor_deploy metadata; defaults were used."""


@dataclass(frozen=True)
class NmsSettings:
    """NMS baked into the graph (`mode` "onnx"/"trt") or left to the runtime (`mode` "none")."""

    mode: str = "none"
    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300


@dataclass(frozen=True)
class ModelMetadata:
    """What the runtime needs to know about a model. `imgsz` is (H, W); `batch` None when dynamic."""

    names: tuple[str, ...]
    stride: tuple[int, ...] = DEFAULT_STRIDES
    imgsz: tuple[int, int] | None = None
    dynamic: bool = False
    batch: int | None = 1
    pad_value: int = 114
    nms: NmsSettings = field(default_factory=NmsSettings)
    half: bool = False
    branch: str = ""
    variant: str = ""
    source_sha256: str = ""
    version: str = ""
    from_model: bool = True  # False when these are fallback defaults

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def max_stride(self) -> int:
        return max(self.stride)


def parse_metadata(text: str, source: str = "model") -> ModelMetadata:
    """Parse the JSON value of the `yolor_deploy` key; InputError naming `source` when malformed."""
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        fmt = d.get("format", 1)
        if fmt != 1:
            raise ValueError(f"unsupported metadata format {fmt!r} (this version reads format 1)")
        nms_d = d.get("nms") or {}
        mode = str(nms_d.get("mode", "none"))
        if mode not in NMS_MODES:
            raise ValueError(f"unknown nms mode {mode!r}")
        nms = NmsSettings(
            mode=mode,
            conf_thres=float(nms_d.get("conf_thres", 0.25)),
            iou_thres=float(nms_d.get("iou_thres", 0.45)),
            max_det=int(nms_d.get("max_det", 300)),
        )
        imgsz = d.get("imgsz")
        batch = d.get("batch")
        return ModelMetadata(
            names=tuple(str(n) for n in d["names"]),
            stride=tuple(int(s) for s in d.get("stride") or DEFAULT_STRIDES),
            imgsz=(int(imgsz[0]), int(imgsz[1])) if imgsz else None,
            dynamic=bool(d.get("dynamic", False)),
            batch=int(batch) if batch is not None else None,
            pad_value=int(d.get("pad_value", 114)),
            nms=nms,
            half=bool(d.get("half", False)),
            branch=str(d.get("branch", "")),
            variant=str(d.get("variant", "")),
            source_sha256=str(d.get("source_sha256", "")),
            version=str(d.get("version", "")),
        )
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise InputError(f"{source}: malformed {METADATA_KEY} metadata ({e})") from None


def guess_strides(n_rows: int | None, h: int | None, w: int | None) -> tuple[int, ...]:
    """Strides of a YOLOR head from its row count N = 3 * sum(H/s * W/s), when all are known.

    3 levels (8, 16, 32) give N = 3*H*W*21/1024, 4 levels (8..64) N = 3*H*W*85/4096. Otherwise
    (8, 16, 32, 64): padding to a multiple of 64 is valid for both families.
    """
    if n_rows and h and w:
        for strides in ((8, 16, 32), (8, 16, 32, 64), (8, 16, 32, 64, 128)):
            top = strides[-1]
            if h % top == 0 and w % top == 0 and n_rows == sum(3 * (h // s) * (w // s) for s in strides):
                return strides
    return DEFAULT_STRIDES


def fallback_metadata(
    source: str,
    nc: int | None,
    input_shape: tuple[int | None, int | None, int | None, int | None],
    nms_mode: str = "none",
    n_rows: int | None = None,
) -> ModelMetadata:
    """Defaults for a model without our metadata, with a `MetadataWarning`.

    names "0".."nc-1" from the output width (nc unknown: names are made up as classes appear);
    size, batch and dynamic-ness from the input shape; strides guessed from the row count
    (`guess_strides`); pad 114; NMS mode from the output names.
    """
    b, _, h, w = input_shape
    dynamic = h is None or w is None
    strides = guess_strides(n_rows, h, w)
    warnings.warn(
        f"{source}: no {METADATA_KEY} metadata; assuming class names 0..{(nc or 1) - 1}, strides "
        f"{list(strides)}, pad 114, nms '{nms_mode}'" + ("" if dynamic else f", input {h}x{w}"),
        MetadataWarning,
        stacklevel=3,
    )
    return ModelMetadata(
        names=tuple(str(i) for i in range(nc or 0)),
        stride=strides,
        imgsz=None if dynamic else (int(h), int(w)),
        dynamic=dynamic,
        batch=b,
        nms=NmsSettings(mode=nms_mode),
        from_model=False,
    )
