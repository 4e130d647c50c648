"""`load_checkpoint`: the three checkpoint formats we accept, loaded without upstream code.

- paper branch: `{'model': pickled models.yolo.Model (fp16, SyncBatchNorm), ...}`; our network is
  built from the embedded `yaml` and filled from the pickled state (fp32, BatchNorm2d);
- main branch: `{'model': fp32 state_dict, ...}`, needs `cfg` (variant name or .cfg path);
- ours (`save_checkpoint`): loadable with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError
from ..nn.model import YOLORModel
from ..nn.registry import VARIANTS, build_model, default_names, list_variants, parse_config
from .state import load_strict, stand_in_modules, stand_in_state_dict, state_differences, to_fp32
from .unpickler import StandIn, safe_torch_load

OUR_FORMAT = "yolor-deploy"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_bn_eps(model: torch.nn.Module, stand_in: StandIn) -> None:
    eps = {name: float(m.eps) for name, m in stand_in_modules(stand_in) if hasattr(m, "eps")}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and name in eps:
            m.eps = eps[name]


def _load_paper(obj: StandIn, path: Path, cfg) -> YOLORModel:
    qual = getattr(obj, "qualname", "")
    if qual != "models.yolo.Model":
        raise CheckpointError(f"{path}: 'model' is a pickled {qual or type(obj).__name__}, expected models.yolo.Model")
    yaml_dict = getattr(obj, "yaml", None)
    if cfg is None and not isinstance(yaml_dict, dict):
        raise CheckpointError(f"{path}: the pickled model carries no 'yaml' config; pass cfg=")
    sd = to_fp32(stand_in_state_dict(obj))
    nc = getattr(obj, "nc", None)
    spec = parse_config(cfg if cfg is not None else yaml_dict, nc=int(nc) if nc else None)
    names = getattr(obj, "names", None)
    names = [str(n) for n in names] if isinstance(names, (list, tuple)) and len(names) == spec.nc else None
    model = build_model(spec, names=names or default_names(spec.nc))
    load_strict(model, sd, str(path))
    _copy_bn_eps(model, obj)
    model.variant = str(cfg) if cfg is not None else (getattr(obj, "yaml_file", "") or "<embedded yaml>")
    return model


def _infer_nc(sd: dict, na: int = 3) -> int | None:
    outs = [v.shape[0] for k, v in sd.items() if k.endswith("Conv2d.bias") and v.ndim == 1]
    fits = [c // na - 5 for c in outs if c % na == 0 and c // na > 5]
    return fits[-1] if fits else None


def suggest_main_variants(sd: dict) -> list[str]:
    """Registered main-branch variants whose state_dict keys and shapes fit `sd` exactly."""
    nc = _infer_nc(sd)
    fits = []
    for name in list_variants("main"):
        try:
            with torch.device("meta"):
                m = build_model(parse_config(name, nc=nc))
        except Exception:  # noqa: BLE001 - a suggestion must never mask the real error
            continue
        if not state_differences(m, sd):
            fits.append(f"{name} (nc={nc})")
    return fits


def _load_main(sd: dict, path: Path, cfg) -> YOLORModel:
    sd = to_fp32({k: v for k, v in sd.items() if torch.is_tensor(v)})
    if cfg is None:
        fits = suggest_main_variants(sd)
        hint = f"; its shapes fit: {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{path}: a main-branch (darknet) state_dict needs cfg (a variant name or .cfg "
                              f"path){hint}")
    spec = parse_config(cfg, nc=_infer_nc(sd) if str(cfg) in VARIANTS else None)
    model = build_model(spec, names=default_names(spec.nc))

    def hint() -> str:
        fits = suggest_main_variants(sd)
        return f"; try cfg={fits[0].split()[0]}" if fits else ""

    load_strict(model, sd, str(path), what=f"cfg {cfg}", hint=hint)
    model.variant = str(cfg)
    return model


def _load_ours(ckpt: dict, path: Path) -> YOLORModel:
    spec_data = ckpt.get("spec")
    if ckpt.get("branch") == "main":
        from ..cfg.darknet import DarknetSpec

        spec = DarknetSpec.from_dict(spec_data)
    else:
        spec = parse_config(spec_data)
    model = build_model(spec, names=list(ckpt.get("names") or []) or None)
    load_strict(model, ckpt["state_dict"], str(path))
    for name, m in model.named_modules():
        if name in (ckpt.get("bn_eps") or {}):
            m.eps = float(ckpt["bn_eps"][name])
    model.variant = ckpt.get("variant", "")
    return model


def load_checkpoint(path: str | Path, cfg: str | Path | None = None) -> YOLORModel:
    """Load any supported YOLOR checkpoint into our own model: fp32, eval mode, no grad."""
    path = Path(path)
    ckpt = safe_torch_load(path)
    try:
        if isinstance(ckpt, dict) and ckpt.get("format") == OUR_FORMAT:
            model = _load_ours(ckpt, path)
        elif isinstance(ckpt, dict) and ("model" in ckpt or "ema" in ckpt):
            obj = ckpt.get("ema") or ckpt.get("model")
            if isinstance(obj, StandIn):
                model = _load_paper(obj, path, cfg)
            elif isinstance(obj, dict):
                model = _load_main(obj, path, cfg)
            else:
                raise CheckpointError(f"{path}: 'model' entry is a {type(obj).__name__}, not a model or state_dict")
        elif isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
            model = _load_main(ckpt, path, cfg)
        else:
            raise CheckpointError(f"{path}: not a YOLOR checkpoint (no 'model' entry)")
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model.source = str(path)
    model.source_sha256 = file_sha256(path)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.float().eval()
