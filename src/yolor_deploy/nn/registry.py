"""Named YOLOR variants and the one front door: `create_model`."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..cfg.plain import MAX_PARAMS, params_message
from ..errors import ConfigError
from ..names import coco_names
from .init import init_well_conditioned
from .model import YOLORModel


@dataclass(frozen=True)
class Variant:
    name: str
    branch: str  # "paper" | "main"
    config: str  # file name under yolor_deploy/configs/<branch>/


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("yolor-p6", "paper", "yolor-p6.yaml"),
    Variant("yolor-w6", "paper", "yolor-w6.yaml"),
    Variant("yolor-e6", "paper", "yolor-e6.yaml"),
    Variant("yolor-d6", "paper", "yolor-d6.yaml"),
    Variant("yolor-ssss-s2d", "paper", "yolor-ssss-s2d.yaml"),
    Variant("yolor-ssss-dwt", "paper", "yolor-ssss-dwt.yaml"),
    Variant("yolor_p6", "main", "yolor_p6.cfg"),
    Variant("yolor_w6", "main", "yolor_w6.cfg"),
    Variant("yolor_csp", "main", "yolor_csp.cfg"),
    Variant("yolor_csp_x", "main", "yolor_csp_x.cfg"),
]}


def list_variants(branch: str | None = None) -> list[str]:
    return [n for n, v in VARIANTS.items() if branch is None or v.branch == branch]


def config_path(variant: str) -> Path:
    v = VARIANTS[variant]
    return Path(str(resources.files("yolor_deploy") / "configs" / v.branch / v.config))


def default_names(nc: int) -> list[str]:
    return list(coco_names()) if nc == 80 else [f"class{i}" for i in range(nc)]


def parse_config(cfg: str | Path | dict, nc: int | None = None):
    """A variant name, a .yaml/.cfg path or a paper-branch dict -> the branch's spec."""
    from ..cfg.yaml_cfg import parse_yaml_cfg

    if isinstance(cfg, dict):
        return parse_yaml_cfg(cfg, nc=nc)
    name = str(cfg)
    if name in VARIANTS:
        path, branch = config_path(name), VARIANTS[name].branch
    else:
        path = Path(name)
        suffix = path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".cfg"):
            known = ", ".join(VARIANTS)
            raise ConfigError(f"{name}: not a known variant ({known}) nor a .yaml/.cfg file")
        if not path.is_file():
            raise ConfigError(f"{name}: config file not found")
        branch = "main" if suffix == ".cfg" else "paper"
    if branch == "main":
        from ..cfg.darknet import parse_darknet_cfg

        return parse_darknet_cfg(path, nc=nc)
    return parse_yaml_cfg(path, nc=nc)


def build_model(spec, names: list[str] | None = None) -> YOLORModel:
    """Build the network for a parsed spec (random init, train mode).

    The parameter count is known before anything is allocated, from the very modules that would be
    built: the network is first built on torch's meta device (no storage), counted, and refused above
    `MAX_PARAMS` with one line naming the config."""
    if torch.empty(0).device.type != "meta":  # not already under `with torch.device("meta")`
        with torch.device("meta"):
            n = _construct(spec, names).num_params()
        if n > MAX_PARAMS:
            raise ConfigError(params_message(spec.source, n))
    return _construct(spec, names)


def _construct(spec, names: list[str] | None) -> YOLORModel:
    if spec.branch == "main":
        from .darknet import DarknetModel

        return DarknetModel(spec, names=names or default_names(spec.nc))
    from .paper import PaperModel

    return PaperModel(spec, names=names or default_names(spec.nc))


def create_model(cfg: str | Path | dict, nc: int | None = None, names: list[str] | None = None,
                 seed: int | None = None, well_conditioned: bool = True) -> YOLORModel:
    """Build a variant by name (`"yolor-p6"`) or config path, in eval mode with random weights.

    With `seed`, weights are reproducible and the detection-head biases get upstream's priors; unless
    `well_conditioned=False`, they are then made well-conditioned (`nn.init.init_well_conditioned`: BatchNorm
    calibrated on the bundled images, head scaled), so that the output depends on the input.
    """
    if seed is not None:
        torch.manual_seed(seed)
    spec = parse_config(cfg, nc=nc)
    model = build_model(spec, names=names)
    model.variant = str(cfg) if not isinstance(cfg, dict) else "<dict>"
    init = getattr(model, "init_biases", None)
    if init is not None:
        init()
    if seed is not None and well_conditioned:
        init_well_conditioned(model, seed)
    return model.eval()
