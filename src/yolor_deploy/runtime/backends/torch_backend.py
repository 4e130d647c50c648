"""PyTorch backend for the runtime's `Detector`: same face (`protocol.Backend`) as `onnxruntime.OrtBackend`.

This is the only runtime-side module that imports torch (lazily, in `TorchBackend.__init__`), so
that `.pt` checkpoints and `.onnx` exports share one pre/post-processing path while
`yolor_deploy.runtime` itself stays torch-free.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from .metadata import DEFAULT_STRIDES, ModelMetadata, NmsSettings


class TorchBackend:
    """A YOLOR `nn.Module` in eval mode, fp32, on CPU.

    `checkpoint`: a checkpoint path (loaded with `yolor_deploy.checkpoint.load_checkpoint(path,
    cfg)`) or an `nn.Module` whose eval forward returns Tensor[B, N, 5+nc] (the `--nms none`
    contract) and which has `names` and `strides`. `threads` calls `torch.set_num_threads`
    (process-wide).
    """

    def __init__(self, checkpoint: Any, cfg: Any = None, threads: int | None = None):
        try:
            import torch
        except ImportError as e:
            raise InputError(f"{checkpoint}: running a PyTorch checkpoint needs torch "
                             f"(pip install 'yolor-deploy[export]'): {e}") from None
        self.torch = torch
        if threads:
            torch.set_num_threads(int(threads))
        t0 = time.perf_counter()
        if isinstance(checkpoint, torch.nn.Module):
            model, self.path = checkpoint, type(checkpoint).__name__
        else:
            model, self.path = self._load(Path(checkpoint), cfg), str(checkpoint)
        self.model = model.float().eval()
        self.load_seconds = time.perf_counter() - t0
        self.name = f"pytorch {torch.__version__} (cpu)"
        self.input_shape: tuple[int | None, ...] = (None, 3, None, None)
        self.output_shapes: list[tuple[int | None, ...]] = [(None, None, None)]
        self.input_dtype = np.dtype(np.float32)
        self.output_names = ["output"]
        self.metadata = self._metadata()

    @staticmethod
    def _load(path: Path, cfg: Any):
        if not path.is_file():
            raise InputError(f"{path}: no such checkpoint file")
        try:
            from ...checkpoint import load_checkpoint
        except ImportError as e:
            raise InputError(f"{path}: loading checkpoints needs yolor_deploy.checkpoint, which is "
                             f"not available ({e})") from None
        return load_checkpoint(path, cfg=cfg)

    def _metadata(self) -> ModelMetadata:
        m = self.model
        strides = getattr(m, "strides", None)
        if strides is None and getattr(m, "stride", None) is not None:
            strides = [int(s) for s in m.stride.tolist()]  # type: ignore[operator]
        names = list(getattr(m, "names", None) or [str(i) for i in range(int(getattr(m, "nc", 0)))])
        return ModelMetadata(
            names=tuple(str(n) for n in names),
            stride=tuple(int(s) for s in strides) if strides else DEFAULT_STRIDES,
            imgsz=_size(getattr(m, "train_imgsz", None)),
            dynamic=True,
            batch=None,
            nms=NmsSettings(mode="none"),
            branch=str(getattr(m, "branch", "") or ""),
            variant=str(getattr(m, "variant", "") or ""),
        )

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """ndarray[B, 3, H, W] float32 -> [ndarray[B, N, 5+nc] float32]."""
        torch = self.torch
        with torch.inference_mode():
            y = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if isinstance(y, (tuple, list)):  # upstream-style (pred, raw)
            y = y[0]
        return [y.float().cpu().numpy()]


def _size(value) -> tuple[int, int] | None:
    """A model's recorded training size as (H, W), or None."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return (int(value[0]), int(value[1]))
    return None
