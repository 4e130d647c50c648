"""`load_checkpoint`: the three checkpoint formats we accept, loaded without upstream code.

- paper branch: `{'model': pickled models.yolo.Model (fp16, SyncBatchNorm), ...}`; our network is
  built from the embedded `yaml` and filled from the pickled state (fp32, BatchNorm2d);
- main branch: `{'model': fp32 state_dict, ...}`, needs `cfg` (variant name or .cfg path);
- ours (`save_checkpoint`): loadable with `torch.load(weights_only=True)`.

A checkpoint is untrusted input: the file is read by `archive.read_checkpoint` (never `torch.load`),
every value taken from the loaded object is type-checked, and any failure is one `CheckpointError`
line naming the file; an exception no check expected (a bug of ours) is an `errors.InternalError`, also one
line naming the file, with the original chained.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError, InternalError, YolorDeployError, internal_error
from ..fs import file_sha256
from ..nn.model import YOLORModel
from ..nn.registry import VARIANTS, build_model, default_names, list_variants, parse_config
from .archive import one_line, read_checkpoint
from .inert import StandIn, clip
from .state import load_strict, stand_in_modules, stand_in_state_dict, state_differences, to_fp32
from .train_size import training_size, valid_size

OUR_FORMAT = "yolor-deploy"


def _bn_eps(value, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 < value < 1:
        raise CheckpointError(f"batch-norm {clip(where, 200)}: eps {clip(value)} is not a number in (0, 1)")
    return float(value)


def _copy_bn_eps(model: torch.nn.Module, stand_in: StandIn) -> None:
    eps = {name: m.__dict__["eps"] for name, m in stand_in_modules(stand_in) if "eps" in m.__dict__}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and name in eps:
            m.eps = _bn_eps(eps[name], name)


def _names(value, nc: int) -> list[str] | None:
    if isinstance(value, (list, tuple)) and len(value) == nc and all(type(n) in (str, int) for n in value):
        return [str(n) for n in value]
    return None


def _load_paper(obj: StandIn, path: Path, cfg) -> YOLORModel:
    qual = type(obj).qualname
    if qual != "models.yolo.Model":
        raise CheckpointError(f"{path}: 'model' is a pickled {qual}, expected models.yolo.Model")
    attrs = obj.__dict__
    yaml_dict = attrs.get("yaml")
    if cfg is None and not isinstance(yaml_dict, dict):
        raise CheckpointError(f"{path}: the pickled model carries no 'yaml' config; pass cfg=")
    sd = to_fp32(stand_in_state_dict(obj))
    nc = attrs.get("nc")
    if nc is not None and (type(nc) is not int or not 0 <= nc <= 100_000):
        raise CheckpointError(f"{path}: the pickled model's nc is {clip(nc)}, not a class count")
    spec = parse_config(cfg if cfg is not None else yaml_dict, nc=nc or None)
    model = build_model(spec, names=_names(attrs.get("names"), spec.nc) or default_names(spec.nc))
    load_strict(model, sd, str(path))
    _copy_bn_eps(model, obj)
    yaml_file = attrs.get("yaml_file")
    yaml_file = yaml_file if isinstance(yaml_file, str) and 0 < len(yaml_file) <= 1000 else "<embedded yaml>"
    model.variant = str(cfg) if cfg is not None else yaml_file
    return model


def _infer_nc(sd: dict, na: int = 3) -> int | None:
    outs = [v.shape[0] for k, v in sd.items() if k.endswith("Conv2d.bias") and v.ndim == 1]
    fits = [c // na - 5 for c in outs if c % na == 0 and c // na > 5]
    return fits[-1] if fits else None


MAX_NEARBY_CFGS = 20  # .cfg files beside a checkpoint tried as suggestions (each is size-checked by the parser)


def suggest_main_variants(sd: dict, near: Path | None = None) -> list[str]:
    """Configs whose state_dict keys and shapes fit `sd` exactly: registered main-branch variants, then
    darknet `.cfg` files in the checkpoint's folder `near` (upstream keeps `cfg/` beside `weights/`)."""
    nc = _infer_nc(sd)
    tries: list[tuple[str, str | Path, int | None]] = [(f"{name} (nc={nc})", name, nc)
                                                        for name in list_variants("main")]
    if near is not None:
        try:
            nearby = sorted(near.glob("*.cfg"))[:MAX_NEARBY_CFGS]
        except OSError:
            nearby = []
        tries += [(str(f), f, None) for f in nearby if f.is_file()]
    fits = []
    for label, cfg, want_nc in tries:
        try:
            with torch.device("meta"):
                m = build_model(parse_config(cfg, nc=want_nc))
        except InternalError:
            raise
        except (YolorDeployError, MemoryError):  # a config that does not parse or build is no suggestion
            continue
        if not state_differences(m, sd):
            fits.append(label)
    return fits


def _load_main(sd: dict, path: Path, cfg) -> YOLORModel:
    sd = to_fp32({k: v for k, v in sd.items() if type(k) is str and isinstance(v, torch.Tensor)})
    if not sd:
        raise CheckpointError(f"{path}: the state_dict holds no tensors")
    if cfg is None:
        fits = suggest_main_variants(sd, path.parent)
        hint = f"; its shapes fit: {', '.join(fits)}" if fits else ""
        raise CheckpointError(f"{path}: a main-branch (darknet) state_dict needs its config: pass --cfg "
                              f"(cfg= in Python) with a variant name or a .cfg path{hint}")
    spec = parse_config(cfg, nc=_infer_nc(sd) if str(cfg) in VARIANTS else None)
    model = build_model(spec, names=default_names(spec.nc))

    def hint() -> str:
        fits = suggest_main_variants(sd, path.parent)
        if fits:
            return f"; these fit: {', '.join(fits[:3])}"
        return f"; none of the registered variants ({', '.join(list_variants('main'))}) fits"

    load_strict(model, sd, str(path), what=f"cfg {cfg}", hint=hint)
    model.variant = str(cfg)
    return model


def _load_ours(ckpt: dict, path: Path) -> YOLORModel:
    spec_data, sd = ckpt.get("spec"), ckpt.get("state_dict")
    if not isinstance(spec_data, dict):
        raise CheckpointError(f"{path}: a {OUR_FORMAT} checkpoint without its 'spec'")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: a {OUR_FORMAT} checkpoint without its 'state_dict'")
    names = ckpt.get("names")
    if names is not None and not (isinstance(names, (list, tuple)) and all(type(n) is str for n in names)):
        raise CheckpointError(f"{path}: 'names' is {clip(names)}, not a list of class names")
    bn_eps = ckpt.get("bn_eps")
    bn_eps = {} if bn_eps is None else bn_eps
    if not isinstance(bn_eps, dict):
        raise CheckpointError(f"{path}: 'bn_eps' is {clip(bn_eps)}, not a dict")
    variant = ckpt.get("variant", "")
    if not isinstance(variant, str):
        raise CheckpointError(f"{path}: 'variant' is {clip(variant)}, not a name")
    if ckpt.get("branch") == "main":
        from ..cfg.darknet import DarknetSpec

        spec = DarknetSpec.from_dict(spec_data)
    else:
        spec = parse_config(spec_data)
    model = build_model(spec, names=list(names or []) or None)
    load_strict(model, sd, str(path))
    for name, m in model.named_modules():
        if name in bn_eps:
            m.eps = _bn_eps(bn_eps[name], name)
    model.variant = variant
    recorded = ckpt.get("imgsz")
    if recorded is not None and valid_size(recorded) is None:
        raise CheckpointError(f"{path}: 'imgsz' is {clip(recorded)}, not a size")
    model.train_imgsz = valid_size(recorded)
    return model


def _from_object(ckpt, path: Path, cfg) -> YOLORModel:
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a YOLOR checkpoint (a pickled {type(ckpt).__name__}, not a dict)")
    fmt = ckpt.get("format")
    if isinstance(fmt, str) and fmt == OUR_FORMAT:
        return _load_ours(ckpt, path)
    if "model" in ckpt or "ema" in ckpt:
        obj = ckpt.get("ema")
        if not isinstance(obj, (StandIn, dict)) or not (isinstance(obj, StandIn) or obj):
            obj = ckpt.get("model")  # 'ema' (upstream's training checkpoints) when set, else 'model'
        if isinstance(obj, StandIn):
            return _load_paper(obj, path, cfg)
        if isinstance(obj, dict):
            return _load_main(obj, path, cfg)
        raise CheckpointError(f"{path}: 'model' entry is a {type(obj).__name__}, not a model or state_dict")
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return _load_main(ckpt, path, cfg)
    raise CheckpointError(f"{path}: not a YOLOR checkpoint (no 'model' entry)")


def load_checkpoint(path: str | Path, cfg: str | Path | None = None) -> YOLORModel:
    """Load any supported YOLOR checkpoint into our own model: fp32, eval mode, no grad.
    Every failure is a one-line `CheckpointError` naming the file (`InternalError` for a bug of ours)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    try:
        model = _from_object(ckpt, path, cfg)
        model.source = str(path)
        model.source_sha256 = file_sha256(path)
        found = training_size(path, model.train_imgsz)
        if found is not None:
            model.train_imgsz, model.train_imgsz_source = found
        for p in model.parameters():
            p.requires_grad_(False)
        return model.float().eval()
    except ConfigError as e:
        raise CheckpointError(one_line(f"{path}: {e}")) from None
    except CheckpointError as e:
        msg = str(e)
        raise type(e)(one_line(msg if msg.startswith(f"{path}: ") else f"{path}: {msg}")) from None
    except MemoryError:
        raise CheckpointError(f"{path}: out of memory while building the model") from None
    except InternalError:
        raise
    except Exception as e:  # noqa: BLE001 - every value taken from the file is checked: anything else is a bug
        raise internal_error(one_line(str(path)), e, "building the model from the checkpoint") from e
