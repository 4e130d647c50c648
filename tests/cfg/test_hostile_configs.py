"""Hostile configs (paper yaml text, the yaml dicts checkpoints embed, darknet .cfg text and dicts): every one
is refused with a one-line `ConfigError` naming where (`file:line:` or the layer and key), quickly and
without a big allocation. One test per crash class an attack sweep found; `test_fuzz_*` mutate the real
configs at random."""
from __future__ import annotations

import math
import re
import time
import tracemalloc

import pytest
import yaml

from helpers.configs import MINI as _MINI
from helpers.fixtures import FIXTURES, REPO
from yolor_deploy.cfg.darknet import DarknetSpec, parse_darknet_cfg
from yolor_deploy.cfg.plain import MAX_PARAMS, MAX_TEXT_BYTES
from yolor_deploy.cfg.yaml_cfg import parse_yaml_cfg
from yolor_deploy.errors import ConfigError

MINI = _MINI + "jitter=.3\n"  # an option upstream parses and ignores

PAPER = REPO / "src" / "yolor_deploy" / "configs" / "paper"
MAIN = REPO / "src" / "yolor_deploy" / "configs" / "main"
S2D = PAPER / "yolor-ssss-s2d.yaml"  # backbone: layers 0-7, head: 8-28 (28: IDetect)

# upstream.md, "Sizes of the named variants": parameters (our estimate must be exact)
PAPER_PARAMS = {"yolor-p6": 37_270_264, "yolor-w6": 79_880_952, "yolor-e6": 115_909_400,
                "yolor-d6": 151_782_680, "yolor-ssss-s2d": 9_216_634, "yolor-ssss-dwt": 9_216_634}
MAIN_PARAMS = {"yolor_p6": 37_265_016, "yolor_w6": 79_873_400, "yolor_csp": 52_923_994, "yolor_csp_x": 99_754_058}


def refused(fn, *args, match: str, **kwargs) -> str:
    """`fn(*args)` raises a one-line ConfigError matching `match` in well under a second (< 0.5 s) and, run
    again under tracemalloc, allocates less than 32 MiB at its peak."""
    t = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    dt = time.perf_counter() - t
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    assert re.search(match, msg), f"{match!r} not in {msg!r}"
    assert dt < 0.5, f"{dt:.2f} s: {msg}"
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):
            fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB: {msg}"
    return msg


def s2d() -> dict:
    return yaml.safe_load(S2D.read_text())


def layer(data: dict, i: int) -> list:
    """Row of layer i of the s2d config (8 backbone rows, then the head)."""
    return data["backbone"][i] if i < 8 else data["head"][i - 8]


def write(tmp_path, text: str, name: str = "evil.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# --- legitimate inputs are unaffected ------------------------------------------------------------
LEGIT_YAML = sorted(PAPER.glob("*.yaml")) + sorted(FIXTURES.glob("*.yaml")) + sorted((FIXTURES / "trained").glob("*.yaml"))
LEGIT_CFG = sorted(MAIN.glob("*.cfg")) + sorted(FIXTURES.glob("*.cfg"))


@pytest.mark.parametrize("path", LEGIT_YAML, ids=lambda p: p.name)
def test_legit_yaml_parses_from_file_and_dict(path):
    spec = parse_yaml_cfg(path)
    again = parse_yaml_cfg(yaml.safe_load(path.read_text()))
    assert again.layers == spec.layers and again.data == spec.data
    assert parse_yaml_cfg(path, nc=3).nc == 3


@pytest.mark.parametrize("path", LEGIT_CFG, ids=lambda p: p.name)
def test_legit_cfg_parses(path):
    spec = parse_darknet_cfg(path)
    assert DarknetSpec.from_dict(spec.to_dict()) == spec
    assert parse_darknet_cfg(path, nc=3).nc == 3


@pytest.mark.parametrize("variant", sorted({**PAPER_PARAMS, **MAIN_PARAMS}))
def test_parameter_count_is_upstreams_and_known_on_meta(variant):
    """The count `build_model` judges (on the meta device, before allocating) is upstream's."""
    torch = pytest.importorskip("torch")
    from yolor_deploy.nn.registry import build_model, parse_config

    with torch.device("meta"):
        model = build_model(parse_config(variant))
    assert model.num_params() == {**PAPER_PARAMS, **MAIN_PARAMS}[variant]
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize("name", ["paper-p6-tiny.pt", "paper-ssss-s2d.pt"])  # the others: tests/checkpoint, tests/nn
def test_legit_embedded_yaml_dicts(name):
    """The yaml dicts pickled in upstream checkpoints pass the schema and build the loaded network."""
    pytest.importorskip("torch")
    from yolor_deploy.checkpoint import load_checkpoint

    model = load_checkpoint(FIXTURES / name)
    assert model.spec.data is not model.spec.to_dict() and model.num_params() > 1e6


# --- hangs and memory ----------------------------------------------------------------------------
def test_huge_depth_multiple_in_embedded_dict():
    d = s2d()
    d["depth_multiple"] = 1e7
    refused(parse_yaml_cfg, d, match=r"^<dict>: 'depth_multiple' must be a number in \(0, 10\], got 10000000.0$")


def test_billion_laughs_yaml(tmp_path):
    lol = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lol += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    p = write(tmp_path, "\n".join(lol) + "\nnc: 1\nanchors: *i\nbackbone: *i\nhead: []\n")
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:1: YAML anchors \(&a\) are not allowed")


def test_billion_laughs_dict():
    """Shared sub-lists (as a pickle's memo makes them) count each time they are reached."""
    lol: list = ["lol"] * 10
    for _ in range(8):
        lol = [lol] * 10
    d = s2d()
    d["notes"] = lol
    refused(parse_yaml_cfg, d, match=r"^<dict>: more than 10000 values, not a model config$")


@pytest.mark.parametrize("nc", [100_000_000, 10_001])
def test_huge_nc(tmp_path, nc):
    d = s2d()
    d["nc"] = nc
    refused(parse_yaml_cfg, d, match=rf"^<dict>: 'nc' must be an integer in 1..10000, got {nc}$")
    p = write(tmp_path, S2D.read_text().replace("nc: 80", f"nc: {nc}"))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:2: 'nc' must be an integer in 1..10000")
    refused(parse_yaml_cfg, S2D, nc=nc, match=r"yolor-ssss-s2d.yaml: nc must be an integer in 1..10000")


def test_huge_width():
    d = s2d()
    d["width_multiple"] = 1e9
    refused(parse_yaml_cfg, d, match=r"^<dict>: 'width_multiple' must be a number in \(0, 10\], got 1000000000.0$")
    d = s2d()
    layer(d, 4)[3][0] = 10**9
    refused(parse_yaml_cfg, d, match=r"^<dict>: layer 4: Conv needs the output width as first argument: "
                                     r"an integer in 1..16384, got 1000000000$")


_BUILD_CHILD = """
import resource, sys, yaml
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a failing bound must not take the machine
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.cfg.yaml_cfg import parse_yaml_cfg
from yolor_deploy.errors import ConfigError
from yolor_deploy.nn.registry import build_model
path = sys.argv[1]
spec = parse_yaml_cfg(yaml.safe_load(open(path))) if path.endswith(".yaml") else parse_darknet_cfg(path)
try:
    build_model(spec)
    print("built")
except ConfigError as e:
    print(e, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def build_in_child(path) -> tuple[str, int]:
    """(the refusal line, peak RSS KiB) of build_model on a config, in a memory-capped child."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    line, _, rss = r.stdout.strip().rpartition(" ")
    return line, int(rss) if rss.isdigit() else -1


def test_parameter_bound_before_allocation(tmp_path):
    """The schema passes it (each field in range); `build_model` counts ~15 G parameters on the meta device
    and refuses before allocating (a real build would need ~60 GB)."""
    d = yaml.safe_load((PAPER / "yolor-d6.yaml").read_text())
    d["width_multiple"] = 10.0  # within range; ~100x yolor-d6's parameters
    assert parse_yaml_cfg(d).nc == 80
    p = tmp_path / "wide.yaml"
    p.write_text(yaml.safe_dump(d))
    line, rss = build_in_child(p)
    assert re.fullmatch(r"<dict>: the network would have [\d,]+ M parameters \(limit 1,000 M; "
                        r"the largest YOLOR, yolor-d6, has 151.8 M\)", line), line
    assert 0 < rss < 2 << 20, f"peak RSS {rss} KiB"
    assert MAX_PARAMS == 1_000_000_000


def test_activation_bound_of_the_stride_dry_run():
    d = s2d()
    d["backbone"][0] = [-1, 1, "Conv", [16384, 1, 1]]  # x width 0.5: 8192 channels at full resolution
    refused(parse_yaml_cfg, d, match=r"^<dict>: layer 0: Conv: 8192 channels at stride 1 make 536,870,912 values "
                                     r"per 256x256 image \(limit 67,108,864\)$")


def test_repeats_bound():
    d = s2d()
    d["depth_multiple"] = 10.0
    layer(d, 3)[1] = 20
    refused(parse_yaml_cfg, d, match=r"^<dict>: layer 3: BottleneckCSP: 'number' x depth_multiple = 200 repeats "
                                     r"\(limit 100\)$")
    d = s2d()
    layer(d, 3)[1] = 10**6
    refused(parse_yaml_cfg, d, match=r"^<dict>: layer 3: BottleneckCSP: 'number' must be an integer in 1..100")


# --- crash classes: one case each, as a dict (checkpoint) and as yaml text (file:line) ---------------
def _set(d: dict, where: tuple, value):
    *path, last = where
    obj = d
    for k in path:
        obj = layer(obj, k) if obj is d and isinstance(k, int) else obj[k]
    if value is _DROP:
        del obj[last]
    elif obj is d and isinstance(last, int):
        (d["backbone"] if last < 8 else d["head"])[last if last < 8 else last - 8] = value
    else:
        obj[last] = value


_DROP = object()


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True

NAN, INF = float("nan"), float("inf")

# (where (key path; an int first = layer index), new value, expected message after '<source>: ')
CASES = [
    # multipliers: NaN, None, list, bool, zero, negative, inf
    (("depth_multiple",), NAN, r"'depth_multiple' must be a number in \(0, 10\], got nan"),
    (("depth_multiple",), None, r"'depth_multiple' must be a number in \(0, 10\], got None"),
    (("width_multiple",), [0.5], r"'width_multiple' must be a number in \(0, 10\], got \[0.5\]"),
    (("width_multiple",), True, r"'width_multiple' must be a number"),
    (("width_multiple",), 0, r"'width_multiple' must be a number in \(0, 10\], got 0"),
    (("depth_multiple",), -1.0, r"'depth_multiple' must be a number"),
    (("width_multiple",), INF, r"'width_multiple' must be a number in \(0, 10\], got inf"),
    # nc
    (("nc",), None, r"'nc' must be an integer in 1..10000, got None"),
    (("nc",), "80", r"'nc' must be an integer in 1..10000, got '80'"),
    (("nc",), 80.0, r"'nc' must be an integer"),
    (("nc",), True, r"'nc' must be an integer"),
    (("nc",), 0, r"'nc' must be an integer"),
    # anchors
    (("anchors",), 3, r"'anchors' must be a list of 1..8 levels of \(w, h\) pairs, got 3"),
    (("anchors",), "anchors", r"'anchors' must be a list of 1..8 levels"),
    (("anchors",), [], r"'anchors' must be a list of 1..8 levels"),
    (("anchors",), [[1, 2, 3]] * 3, r"'anchors' level 0 must be a list of 1..16 \(w, h\) pairs, got \[1, 2, 3\]"),
    (("anchors",), [[1, "a"]] * 3, r"'anchors' level 0: anchor sizes must be numbers in \(0, 100000\] px, got 'a'"),
    (("anchors",), [[NAN, 1]] * 3, r"'anchors' level 0: anchor sizes must be numbers .*, got nan"),
    (("anchors",), [[-1, 2]] * 3, r"'anchors' level 0: anchor sizes must be numbers .*, got -1"),
    (("anchors",), [[1, 2], [1, 2, 3, 4], [1, 2]], r"'anchors' level 1 has 2 anchors, level 0 has 1"),
    (("anchors",), [[1, 2]] * 9, r"'anchors' must be a list of 1..8 levels"),
    (("anchors", 0), {"w": 1}, r"'anchors' level 0 must be a list"),
    # backbone / head
    (("backbone",), 5, r"'backbone' must be a list of \[from, number, module, args\] rows, got 5"),
    (("head",), "IDetect", r"'head' must be a list of \[from, number, module, args\] rows, got 'IDetect'"),
    (("head",), {"x": 1}, r"'head' must be a list"),
    (("backbone", 2), "ReOrg", r"layer 2: expected \[from, number, module, args\], got 'ReOrg'"),
    (("backbone", 2, 3), _DROP, r"layer 2: expected \[from, number, module, args\], got \[-1, 1, 'ReOrg'\]"),
    (("head",), [], r"the last layer must be IDetect or Detect"),
    # from
    ((4, 0), "a", r"layer 4: Conv: invalid 'from' 'a' \(expected one earlier layer index; layer 4 can use -1 and 0..3\)"),
    ((4, 0), 1.5, r"layer 4: Conv: invalid 'from' 1.5"),
    ((4, 0), [-1], r"layer 4: Conv: invalid 'from' \[-1\] \(expected one earlier layer index"),
    ((4, 0), True, r"layer 4: Conv: invalid 'from' True"),
    ((4, 0), 4, r"layer 4: Conv: invalid 'from' 4"),
    ((4, 0), -6, r"layer 4: Conv: invalid 'from' -6"),
    ((12, 0), [], r"layer 12: Concat: invalid 'from' \[\] \(expected a list of earlier layer indices"),
    ((12, 0), -1, r"layer 12: Concat: invalid 'from' -1 \(expected a list"),
    ((12, 0), [-1, [-2]], r"layer 12: Concat: invalid 'from'"),
    ((28, 0), {"a": 1}, r"layer 28: IDetect: invalid 'from'"),
    # number
    ((4, 1), 0, r"layer 4: Conv: 'number' must be an integer in 1..100, got 0"),
    ((4, 1), 1.5, r"layer 4: Conv: 'number' must be an integer in 1..100, got 1.5"),
    ((4, 1), "3", r"layer 4: Conv: 'number' must be an integer"),
    ((4, 1), None, r"layer 4: Conv: 'number' must be an integer"),
    ((4, 1), True, r"layer 4: Conv: 'number' must be an integer"),
    ((12, 1), 5, r"layer 12: Concat cannot be repeated \('number' must be 1\)"),
    ((4, 1), 5, r"layer 4: Conv repeated 2 times needs as many input as output channels \(128 != 256\)"),
    # module
    ((4, 2), "Evil", r"layer 4: unknown module 'Evil' \(known: Bottleneck, BottleneckCSP, "),
    ((4, 2), "nn.Conv2d", r"layer 4: unknown module 'nn.Conv2d'"),
    ((4, 2), "__import__('os').system('true')", r"layer 4: unknown module"),
    ((4, 2), 5, r"layer 4: unknown module '5'"),
    ((4, 2), ["Conv"], r"layer 4: unknown module"),
    ((4, 2), None, r"layer 4: unknown module 'None'"),
    # args: container type, width 0, arity per module kind, argument types and ranges
    ((4, 3), "512", r"layer 4: Conv: args must be a list, got '512'"),
    ((4, 3), 512, r"layer 4: Conv: args must be a list, got 512"),
    ((4, 3), {"c2": 512}, r"layer 4: Conv: args must be a list"),
    ((4, 3), [], r"layer 4: Conv needs the output width as first argument$"),
    ((4, 3, 0), 0, r"layer 4: Conv needs the output width as first argument: an integer in 1..16384, got 0"),
    ((4, 3, 0), "__import__('os')", r"layer 4: Conv needs the output width as first argument: .*got \"__import__"),
    ((4, 3), [512, 3, 2, None, 1, True, 7], r"layer 4: Conv takes 1..6 arguments \(c2, k, s, p, g, act\), got 7"),
    ((0, 3), [2], r"layer 0: ReOrg takes 0 arguments, got 1: \[2\]"),
    ((10, 3), [], r"layer 10: nn.Upsample takes 2..3 arguments \(size, scale_factor, mode\), got 0"),
    ((12, 3), [1, 2], r"layer 12: Concat takes 0..1 arguments \(dim\), got 2"),
    ((28, 3), ["nc"], r"layer 28: IDetect takes 2 arguments \(nc, anchors\), got 1"),
    ((8, 3), [512, False, 1, 0.5, [5, 9, 13], 7], r"layer 8: SPPCSP takes 1..5 arguments"),
    ((4, 3, 1), "3", r"layer 4: Conv args\[1\] \(kernel size\) must be an odd integer in 1..31, got '3'"),
    ((4, 3, 1), 4, r"layer 4: Conv args\[1\] \(kernel size\) must be an odd integer in 1..31, got 4"),
    ((4, 3, 1), 99999999999999999999, r"layer 4: Conv args\[1\] \(kernel size\) must be an odd integer"),
    ((4, 3, 2), 3, r"layer 4: Conv args\[2\] \(stride\) must be 1, 2, 4 or 8, got 3"),
    ((4, 3), [512, 3, 2, 0], r"layer 4: Conv args\[3\] \(padding\) must be None or k // 2 = 1, got 0"),
    ((4, 3), [512, 3, 2, None, 3], r"layer 4: groups=3 must divide 128 input and 256 output channels"),
    ((4, 3), [512, 3, 2, None, 1, "yes"], r"layer 4: Conv args\[5\] \(activation\) must be True or False, got 'yes'"),
    ((3, 3), [256, True, 1, NAN], r"layer 3: BottleneckCSP args\[3\] \(expansion\) must be a number in \(0, 2\], got nan"),
    ((3, 3), [256, True, 1, 0.001], r"layer 3: BottleneckCSP: hidden width int\(128 \* e=0.001\) is 0"),
    ((8, 3), [512, False, 1, 0.5, [5, 9]], r"layer 8: SPPCSP takes exactly 3 pool kernel sizes, got \[5, 9\]"),
    ((8, 3), [512, False, 1, 0.5, [5, "x", 13]], r"layer 8: SPPCSP args\[4\] \(pool kernel sizes\) must be a list"),
    ((10, 3), [None, NAN, "nearest"], r"layer 10: nn.Upsample args\[1\] must be 1, 2, 4 or 8, got nan"),
    ((10, 3), [None, 2, "evil"], r"layer 10: nn.Upsample args\[2\] must be 'nearest' or 'bilinear'"),
    ((10, 3), [64, 2], r"layer 10: nn.Upsample args\[0\] must be None \(use scale_factor\), got 64"),
    ((12, 3), [0], r"layer 12: Concat args\[0\] \(dimension\) must be 1 \(channels\), got 0"),
    ((28, 3), [3, "anchors"], r"layer 28: IDetect args\[0\] must be nc \(80\), got 3"),
    ((28, 3), ["nc", 3], r"layer 28: IDetect needs one anchor list per input level \(3\), got 3"),
    ((28, 3), ["nc", [[1, 2]] * 3], r"layer 28: IDetect anchors has 1 anchors per level, 'anchors' has 3"),
    ((28, 3), ["nc", [[1, 2, 3]] * 3], r"layer 28: IDetect anchors level 0 must be a list of 1..16 \(w, h\) pairs"),
    ((4, 3, 1), {"k": 3}, r"layer 4: unsupported argument \{'k': 3\}"),
    # structure: strides, order
    ((12, 0), [-1, 3], r"layer 12: Concat joins feature maps of different strides \(8, 16\)"),
    ((27,), [[-1], 1, "IDetect", ["nc", "anchors"]], r"layer 27: IDetect must be the last layer"),
    ((9,), [-1, 1, "nn.Upsample", [None, 8]], r"layer 9: nn.Upsample: output stride 4 is outside 1..128|"
                                               r"layer 12: Concat joins feature maps of different strides"),
    ((7,), [-1, 1, "Conv", [1024, 3, 8]], r"layer 7: Conv: output stride 256 is outside 1..128"),
    ((0,), [-1, 1, "nn.Upsample", [None, 2]], r"layer 0: nn.Upsample: output stride 1/2 is outside 1..128"),
]


@pytest.mark.parametrize("where, value, message", CASES, ids=[f"{i}-{'.'.join(map(str, c[0]))}" for i, c in enumerate(CASES)])
def test_crash_class_as_dict(where, value, message):
    d = s2d()
    _set(d, where, value)
    refused(parse_yaml_cfg, d, match=rf"^<dict>: (?:{message})")


@pytest.mark.parametrize("where, value, message", [c for c in CASES if not (isinstance(c[1], float) and math.isnan(c[1]))
                                                    and c[1] is not _DROP][::3])
def test_crash_class_as_yaml_file(tmp_path, where, value, message):
    """The same mutation written as yaml: the message names the file and line (a third of the cases)."""
    d = s2d()
    _set(d, where, value)
    p = write(tmp_path, yaml.dump(d, Dumper=_NoAliases, default_flow_style=None, sort_keys=False))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:\d+: (?:{message})")


def test_yaml_line_points_at_the_value(tmp_path):
    text = S2D.read_text()
    assert "[-1, 1, Conv, [512, 3, 2]],  # 4-P4/16" in text
    line = text.splitlines().index("   [-1, 1, Conv, [512, 3, 2]],  # 4-P4/16") + 1
    p = write(tmp_path, text.replace("[512, 3, 2]],  # 4-P4/16", "[512, 4, 2]],"))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:{line}: layer 4: Conv args\[1\] \(kernel size\)")
    p = write(tmp_path, text.replace("nc: 80", "nc: .nan"))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:2: 'nc' must be an integer in 1..10000, got nan$")
    p = write(tmp_path, text.replace("depth_multiple: 0.33", "depth_multiple: .inf"))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:3: 'depth_multiple' must be a number")


def test_self_referential_yaml(tmp_path):
    text = S2D.read_text().replace("[-1, 1, Conv, [512, 3, 2]]", "[-1, 1, Conv, &x [64, *x]]")
    p = write(tmp_path, text)
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:19: YAML anchors \(&x\) are not allowed")


def test_self_referential_dict():
    d = s2d()
    args: list = [64]
    args.append(args)
    layer(d, 4)[3] = args
    refused(parse_yaml_cfg, d, match=r"^<dict>: 'backbone'\[4\]\[3\]\[1\]\[1\].*nested deeper than 12 levels "
                                     r"\(or self-referential\)")


def test_5000_digit_nc(tmp_path):
    p = write(tmp_path, S2D.read_text().replace("nc: 80", "nc: " + "9" * 5000))
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}:2: unreadable number '9999")
    d = s2d()
    d["nc"] = 10**5000
    refused(parse_yaml_cfg, d, match=r"^<dict>: 'nc' must be an integer in 1..10000, got an integer of 16610 bits$")


# --- the yaml reader ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("[" * 200_000, r":1: (nested deeper than 12 levels|invalid YAML \(exceeded maximum nesting depth\))"),
    ("x: " + "[" * 13 + "]" * 13, r":1: nested deeper than 12 levels, not a model config"),
    ("nc: !!python/object/apply:os.system ['true']\n", r":1: unsupported YAML type !!python/object/apply:os.system \(a model config holds numbers"),
    ("nc: !custom 3\n", r":1: unsupported YAML type !custom"),
    ("nc: 2001-12-14\n", r":1: unsupported YAML type !!timestamp"),
    ("nc: !!binary aGk=\n", r":1: unsupported YAML type !!binary"),
    ("nc: 1\nnc: 2\n", r":2: key 'nc' given twice"),
    ("nc: 1\n1: 2\n", r":2: mapping key 1 is not a string"),
    ("nc: 1\n---\nnc: 2\n", r":2: more than one YAML document"),
    ("nc: [1, 2\n", r":2: invalid YAML"),
    ("- 1\n- 2\n", r": not a YOLOR model config \(top level is not a mapping\)"),
    ("", r": not a YOLOR model config"),
    ("nc: 1\nx: " + "a" * 300 + "\n", r":2: string of 300 characters \(limit 200\)"),
    ("x: [" + "1, " * 10_001 + "]\n", r":1: more than 10000 values"),
    ("# " + "x" * MAX_TEXT_BYTES + "\n", r": larger than 256 KiB, not a model config"),
])
def test_yaml_reader_refuses(tmp_path, text, message):
    p = write(tmp_path, text)
    refused(parse_yaml_cfg, p, match=rf"^{re.escape(str(p))}{message}")


def test_unreadable_files(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"nc: 1\n\xff\xfe\x00")
    refused(parse_yaml_cfg, p, match=r"bin.yaml: not UTF-8 text \(byte 6\)")
    refused(parse_yaml_cfg, tmp_path, match=r": cannot read config")
    refused(parse_yaml_cfg, tmp_path / "missing.yaml", match=r"missing.yaml: cannot read config \(No such file")


@pytest.mark.parametrize("value, message", [
    ({1: 2}, r"'notes': key 1 is not a short string"),
    ({"k": b"bytes"}, r"'notes'.k: unsupported value of type bytes"),
    ({"k": {1, 2}}, r"'notes'.k: unsupported value of type set"),
    ("x" * 1000, r"'notes': string of 1000 characters \(limit 200\)"),
])
def test_dict_values_must_be_plain(value, message):
    d = s2d()
    d["notes"] = value
    refused(parse_yaml_cfg, d, match=rf"^<dict>: {message}")


# --- darknet .cfg ------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, line, message", [
    ("size=3", "size=99999999999999999999", 7, r"bad value size=99999999999999999999 \(expected an integer in 1..31\)"),
    ("size=3", "size=" + "9" * 5000, 7, r"bad value size='9999.*\.\.\. \(expected an integer\)"),
    ("filters=8", "filters=nan", 6, r"bad value filters='nan' \(expected an integer\)"),
    ("filters=8", "filters=1e9", 6, r"bad value filters='1e9' \(expected an integer\)"),
    ("filters=8", "filters=0", 6, r"bad value filters=0 \(expected an integer in 1..262144\)"),
    ("filters=8", "filters=-8", 6, r"bad value filters=-8 \(expected an integer in 1..262144\)"),
    ("stride=2", "stride=inf", 8, r"bad value stride='inf' \(expected an integer\)"),
    ("stride=2", "stride=64", 8, r"bad value stride=64 \(expected an integer in 1..32\)"),
    ("classes=1", "classes=100000000", 22, r"bad value classes=100000000 \(expected an integer in 1..10000\)"),
    ("num=3", "num=99999999999", 23, r"bad value num=99999999999 \(expected an integer in 1..1024\)"),
    ("anchors=10,13,", "anchors=nan,13,", 21, r"bad value anchors='nan,13, 16,30, 33,23' \(expected comma-separated numbers\)"),
    ("anchors=10,13,", "anchors=1e300,13,", 21, r"bad value anchors=.* \(expected anchor sizes in \(0, 100000\] px\)"),
    ("anchors=10,13,", "anchors=-10,13,", 21, r"bad value anchors='-10,13, .*\(expected anchor sizes in \(0, 100000\] px\)"),
    ("anchors=10,13,", "anchors=" + "1," * 2000, 21, r"bad value anchors='1,1,1.*\.\.\. \(expected 1..1024 comma-separated numbers\)"),
    ("mask=0,1,2", "mask=0,1,99999999999999999999", 20, r"bad value mask='0,1,99999999999999999999' \(expected anchor indices"),
    ("jitter=.3", "jitter=nan", 24, r"bad value jitter='nan' \(expected a finite number up to 1e\+09\)"),
    ("jitter=.3", "jitter=1e400", 24, r"bad value jitter='1e400' \(expected a finite number"),
    ("width=64", "width=" + "9" * 20, 2, r"bad value width=99999999999999999999 in \[net\]"),
    ("width=64", "width=-inf", 2, r"bad value width=-inf in \[net\]"),
    ("[yolo]", "[route]\nlayers=-1,-99999999999999999999\n\n[yolo]", 20, r"bad value layers=.* \(expected layer references within"),
    ("filters=18", "filters=18\ngroups=0", 14, r"bad value groups=0 \(expected an integer in 1..262144\)"),
    ("[net]", "[net]\n" + "[maxpool]\nsize=1\nstride=1\n" * 2001, None, r"more than 2000 layers, not a model cfg"),
    ("activation=linear", "activation=" + "x" * 300, 17, r"bad value activation='xxxx.*\(expected a name\)"),
])
def test_darknet_refuses(tmp_path, old, new, line, message):
    assert old in MINI
    p = write(tmp_path, MINI.replace(old, new, 1), "evil.cfg")
    refused(parse_darknet_cfg, p, match=rf"^{re.escape(str(p))}:{line or '[0-9]+'}: (?:\[\w+\] )?{message}")


def test_darknet_parameter_and_channel_bounds(tmp_path):
    big = "[convolutional]\nfilters=262144\nsize=31\nstride=1\npad=1\nactivation=linear\n\n"
    p = write(tmp_path, MINI.replace("[convolutional]", big + big + "[convolutional]", 1), "big.cfg")
    line, rss = build_in_child(p)
    assert re.match(r".*big.cfg: the network would have [\d,]+ M parameters \(limit 1,000 M", line), line
    assert 0 < rss < 2 << 20
    route = "[route]\nlayers=" + ",".join(["-1"] * 64) + "\n\n"
    p = write(tmp_path, MINI.replace("[convolutional]", big + route, 1), "wide.cfg")
    refused(parse_darknet_cfg, p, match=r"wide.cfg:11: \[route\] outputs 16777216 channels \(limit 262144\)")
    refused(parse_darknet_cfg, MINI, nc=10**8, match=r"<string>: nc must be a positive integer up to 10000, got 100000000")
    p = write(tmp_path, "# " + "x" * MAX_TEXT_BYTES, "huge.cfg")
    refused(parse_darknet_cfg, p, match=r"huge.cfg: larger than 256 KiB, not a model cfg")


def test_darknet_stride_bound(tmp_path):
    pool = "[maxpool]\nsize=2\nstride=32\n\n"
    p = write(tmp_path, MINI.replace("[convolutional]", pool * 3 + "[convolutional]", 1), "deep.cfg")
    refused(parse_darknet_cfg, p, match=r"deep.cfg:12: \[maxpool\] output stride 32768 is outside 1/1024..1024")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["sections"][0].update(line=float("inf")), r"not a darknet cfg spec"),
    (lambda d: d["sections"][0].update(type=["convolutional"]), r"unknown layer type \[\['convolutional'\]\]"),
    (lambda d: d["sections"][0]["options"].update(filters=float("nan")), r"bad value filters=nan \(expected an integer\)"),
    (lambda d: d["sections"][0]["options"].update(size=1e300), r"bad value size=1e\+300 \(expected an integer in 1..31\)"),
    (lambda d: d["sections"][0]["options"].update(size=10**5000), r"bad value size=an integer of 16610 bits"),
    (lambda d: d["sections"][2]["options"].update(anchors=[[1, 2]]), r"bad value anchors=\[\[1, 2\]\] \(expected comma-separated"),
    (lambda d: d["sections"][2]["options"].update(anchors=float("nan")), r"expected 1..1024 comma-separated numbers"),
    (lambda d: d["net"].update(width=10**5000), r"bad value width=an integer of 16610 bits in \[net\]"),
    (lambda d: d.update(nc=10**5000), r"stored nc=an integer of 16610 bits does not match"),
    (lambda d: d.update(sections=[d["sections"][0]] * 2001), r"more than 2000 layers"),
])
def test_darknet_from_dict_refuses(mutate, message):
    d = parse_darknet_cfg(MINI).to_dict()
    mutate(d)
    refused(DarknetSpec.from_dict, d, match=message)


# --- through the CLI ---------------------------------------------------------------------------------
EVIL = {
    "depth.yaml": S2D.read_text().replace("depth_multiple: 0.33", "depth_multiple: 1e7"),
    "laughs.yaml": "a: &a [1, 1]\nb: &b [*a, *a]\nnc: 1\nanchors: *b\nbackbone: []\nhead: []\n",
    "nc.yaml": S2D.read_text().replace("nc: 80", "nc: 100000000"),
    "module.yaml": S2D.read_text().replace("[-1, 1, Conv, [512, 3, 2]]", "[-1, 1, Conv, [512, 3, 2, 1, 1, 1, 1]]"),
}


@pytest.mark.parametrize("name", list(EVIL))
def test_cli_info_refuses_evil_config(tmp_path, capsys, name):
    from yolor_deploy.cli.main import main

    p = write(tmp_path, EVIL[name], name)
    assert main(["info", str(FIXTURES / "paper-p6-tiny.pt"), "--cfg", str(p)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"{p}:" in err[0], err
    assert main(["info", str(p)]) == 2  # a config where a checkpoint belongs: one line too
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


@pytest.mark.parametrize("parse, make", [
    (parse_yaml_cfg, lambda: {**s2d(), "notes": {"a\nerror: injected\x1b[31m": b"bytes"}}),
    (parse_yaml_cfg, lambda: {**s2d(), "notes": "x\u2028y" * 100}),
    (DarknetSpec.from_dict, lambda: {**parse_darknet_cfg(MINI).to_dict(),
                                     "sections": [{"type": "evil\nerror: injected", "options": {}, "line": 1}]}),
    (DarknetSpec.from_dict, lambda: {**parse_darknet_cfg(MINI).to_dict(),
                                     "sections": [{"type": "convolutional", "options": {"\x1b[2J": 1}, "line": 1}]}),
])
def test_messages_escape_what_the_config_says(parse, make):
    """Names and values quoted from a config are escaped: no line break or terminal escape in a message."""
    msg = refused(parse, make(), match=r".")
    assert msg.isprintable() and len(msg.splitlines()) == 1, msg
