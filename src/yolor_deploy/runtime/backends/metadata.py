"""Reading the `yolor_deploy` metadata (the contract in `yolor_deploy.contract`) in the runtime.

A model without it (someone else's export) still runs, with defaults chosen by `fallback_metadata` from its
input and output shapes (`read_metadata`) and a warning saying so.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from ...contract import DEFAULT_STRIDES, METADATA_KEY, NMS_MODES, NMS_OUTPUTS, MetadataError, ModelMetadata, NmsSettings
from ...errors import InputError

__all__ = ["DEFAULT_STRIDES", "METADATA_KEY", "NMS_MODES", "MetadataWarning", "ModelMetadata", "NmsSettings",
           "fallback_metadata", "guess_strides", "parse_metadata", "read_metadata", "static_dim"]


class MetadataWarning(UserWarning):
    """The model carries no (or partial) yolor_deploy metadata; defaults were used."""


def parse_metadata(text: str, source: str = "model") -> ModelMetadata:
    """Parse the JSON value of the `yolor_deploy` key; InputError naming `source` when malformed."""
    try:
        return ModelMetadata.from_json(text)
    except MetadataError as e:
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
        imgsz=None if h is None or w is None else (int(h), int(w)),
        dynamic=dynamic,
        batch=b,
        nms=NmsSettings(mode=nms_mode),
        from_model=False,
    )


def static_dim(d) -> int | None:
    """An axis length when the model fixes it, else None (a dynamic axis: a name, -1 or 0)."""
    return d if isinstance(d, int) and d > 0 else None


def read_metadata(text: str | None, path: str, output_names: Sequence[str], output0_shape,
                  input_shape) -> ModelMetadata:
    """Our metadata JSON when the model has it; otherwise defaults inferred from the outputs (four
    NMS outputs: NMS in the graph; else the first output must be [B, N, 5+nc]), with a warning."""
    if text is not None:
        return parse_metadata(text, path)
    if set(NMS_OUTPUTS) <= set(output_names):
        mode, nc, n_rows = "onnx", None, None
    else:
        shape = list(output0_shape)
        if len(shape) != 3:
            raise InputError(f"{path}: no {METADATA_KEY} metadata and the output "
                             f"{output_names[0]} {shape} is not [B, N, 5+nc]")
        width = static_dim(shape[2])
        nc = width - 5 if width else None
        mode, n_rows = "none", static_dim(shape[1])
    return fallback_metadata(path, nc, input_shape, mode, n_rows)
