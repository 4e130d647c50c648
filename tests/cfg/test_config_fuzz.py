"""Fuzzing the config parsers with mutations of the real configs: whatever comes in, the only outcomes are a
spec or a one-line `ConfigError`, fast. A paper spec that parses also builds (on the meta device) into
exactly the parameters the parser computed, so the schema is what keeps the builder from crashing."""
from __future__ import annotations

import copy
import re
import time
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.fixtures import FIXTURES, REPO, require_fixtures
from helpers.fuzz import DERANDOMIZE, examples
from yolor_deploy.cfg.darknet import LAYER_TYPES, DarknetSpec, parse_darknet_cfg
from yolor_deploy.cfg.plain import MAX_PARAMS
from yolor_deploy.cfg.yaml_cfg import LAYERS, YamlSpec, parse_yaml_cfg
from yolor_deploy.errors import ConfigError

PAPER = REPO / "src" / "yolor_deploy" / "configs" / "paper"
MAIN = REPO / "src" / "yolor_deploy" / "configs" / "main"
require_fixtures()  # the configs below are read at import
YAMLS = sorted(PAPER.glob("*.yaml")) + sorted(FIXTURES.glob("*.yaml"))
YAML_TEXTS = [p.read_text() for p in YAMLS]
YAML_DICTS = [yaml.safe_load(t) for t in YAML_TEXTS]
SMALL_DICTS = [d for p, d in zip(YAMLS, YAML_DICTS) if "ssss" in p.stem or "tiny" in p.stem]
CFG_TEXTS = [p.read_text() for p in [MAIN / "yolor_csp.cfg", FIXTURES / "main-csp-tiny.cfg", FIXTURES / "main-p6-tiny.cfg"]]
CFG_DICTS = [parse_darknet_cfg(FIXTURES / "main-csp-tiny.cfg").to_dict()]

FUZZ = settings(max_examples=examples(150), deadline=timedelta(seconds=2), derandomize=DERANDOMIZE,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS = 1.0  # one parse of a mutated config (real ones take 2-30 ms; the margin is for a loaded CI machine)

# values a mutation puts anywhere: wrong types, huge and non-finite numbers, symbols, module names
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.integers(),
    st.sampled_from([0, 1, 2, 3, 8, 16384, 16385, 10**9, 10**20, 10**400, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.25, 1.0, 10.0, 10.5, 1e7, 1e300]),
    st.sampled_from(["nc", "anchors", "None", "True", "False", "nearest", "", "x" * 300, *LAYERS]),
    st.text(max_size=12),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner,
                                                                                             max_size=3), max_leaves=12)


def _paths(x, path=()):
    """Every (container, key) in a nested dict/list, with its path."""
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        yield x, k
        yield from _paths(v, (*path, k))


def mutate(data, d, values=VALUES) -> None:
    """One random change: replace a value, drop it, duplicate or cut a list, grow a list with new values."""
    paths = list(_paths(d))  # picked uniformly (hypothesis' own choices favour the first, i.e. 'nc')
    container, key = paths[data.draw(st.randoms(use_true_random=False), label="rng").randrange(len(paths))]
    op = data.draw(st.sampled_from(["replace", "replace", "replace", "drop", "dup", "cut", "grow"]))
    target = container[key]
    if op == "replace":
        container[key] = data.draw(values)
    elif op == "drop":
        del container[key]
    elif isinstance(target, list) and target:
        if op == "dup":
            i = data.draw(st.integers(0, len(target) - 1))
            target.insert(i, copy.deepcopy(target[i]))
        elif op == "cut":
            del target[data.draw(st.integers(0, len(target))):]
        else:
            target.extend(data.draw(st.lists(values, min_size=1, max_size=3)))


def outcome(fn, *args):
    """A spec or None (a one-line ConfigError), within SECONDS; anything else fails the test."""
    t = time.perf_counter()
    try:
        spec = fn(*args)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e), repr(e)
        spec = None
    assert time.perf_counter() - t < SECONDS, f"{time.perf_counter() - t:.2f} s"
    return spec


@FUZZ
@given(data=st.data())
def test_fuzz_paper_dicts(data):
    d = copy.deepcopy(YAML_DICTS[data.draw(st.integers(0, len(YAML_DICTS) - 1), label="config")])
    for _ in range(data.draw(st.integers(1, 4))):
        if isinstance(d, dict) and d:
            mutate(data, d)
    spec = outcome(parse_yaml_cfg, d)
    assert spec is None or (isinstance(spec, YamlSpec) and spec.layers)


YAML_JUNK = st.text(alphabet="[]{}:,&*!|>-#'\"%@`?~ \t.0123456789eEnaNI_xyzConvDetc", max_size=12)


@FUZZ
@given(data=st.data())
def test_fuzz_paper_yaml_text(data, tmp_path_factory):
    lines = YAML_TEXTS[data.draw(st.integers(0, len(YAML_TEXTS) - 1), label="yaml")].splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["token", "token", "token", "drop", "dup", "swap", "junk"]))
        if op == "token":  # a number, word or bracket of the line becomes junk or a hostile value
            tokens = list(re.finditer(r"-?[\w.]+|[\[\]{},:]", lines[i]))
            if tokens:
                m = data.draw(st.sampled_from(tokens))
                new = data.draw(YAML_JUNK | SCALARS.map(lambda v: yaml.safe_dump(v, default_flow_style=True)
                                                        .removesuffix("\n...\n").strip().replace("\n", " ")))
                lines[i] = lines[i][:m.start()] + new + lines[i][m.end():]
        elif op in LINE_OPS:
            line_op(lines, op, i, data)
        else:
            lines.insert(i, data.draw(YAML_JUNK))
        if not lines:
            lines = [""]
    p = tmp_path_factory.mktemp("fuzz") / "m.yaml"
    p.write_text("\n".join(lines) + "\n")
    spec = outcome(parse_yaml_cfg, p)
    assert spec is None or (isinstance(spec, YamlSpec) and spec.layers)


LINE_OPS = ("drop", "dup", "swap")


def line_op(lines: list[str], op: str, i: int, data) -> None:
    """Drop, duplicate or swap (with a drawn line) line `i` of a config text, in place."""
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    else:
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]


CFG_VALUES = st.one_of(
    st.integers().map(str), st.sampled_from(["nan", "inf", "-inf", "1e400", "99999999999999999999", "9" * 5000,
                                             "0", "-1", "", "1,2", "1,,2", "linear", "3.5", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(-300, 300), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))),
    st.text(alphabet="0123456789-,.=[]#;eE xyz", max_size=10),
)


@FUZZ
@given(data=st.data())
def test_fuzz_darknet_text(data):
    lines = CFG_TEXTS[data.draw(st.integers(0, len(CFG_TEXTS) - 1), label="cfg")].splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["value", "value", "value", "key", "drop", "dup", "swap", "section"]))
        options = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]
        if not lines or (op in ("value", "key") and not options):
            break
        i = data.draw(st.sampled_from(options)) if op in ("value", "key") else data.draw(
            st.integers(0, len(lines) - 1))
        if op == "value":
            lines[i] = lines[i].split("=", 1)[0] + "=" + data.draw(CFG_VALUES)
        elif op == "key":
            key = data.draw(st.sampled_from(["filters", "size", "stride", "groups", "classes", "mask", "anchors",
                                             "layers", "from", "num", "pad", "batch_normalize", "bogus"]))
            lines[i] = key + "=" + lines[i].split("=", 1)[1]
        elif op in LINE_OPS:
            line_op(lines, op, i, data)
        else:
            lines.insert(i, "[" + data.draw(st.sampled_from([*LAYER_TYPES, "net", "evil", ""])) + "]")
    spec = outcome(parse_darknet_cfg, "\n".join(lines) + "\n")
    assert spec is None or isinstance(spec, DarknetSpec)


@FUZZ
@given(data=st.data())
def test_fuzz_darknet_dicts(data):
    d = copy.deepcopy(CFG_DICTS[0])
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(data, d)
    spec = outcome(DarknetSpec.from_dict, d)
    assert spec is None or isinstance(spec, DarknetSpec)


# Plausible values, so that many mutations still parse and get built.
NEAR = st.one_of(st.integers(-4, 40), st.sampled_from([64, 128, 256, 512, 1024, 2048, 0.25, 0.5, 1.5, 2.0, None,
                                                       True, False, "nc", "anchors", "nearest", *LAYERS]),
                 st.lists(st.integers(-3, 30), min_size=1, max_size=3))


@settings(max_examples=examples(60), deadline=None, derandomize=DERANDOMIZE, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_parsed_paper_configs_build(data):
    """Whatever the schema lets through builds (on the meta device, where `build_model` counts parameters)."""
    torch = pytest.importorskip("torch")
    from yolor_deploy.nn.registry import build_model

    d = copy.deepcopy(SMALL_DICTS[data.draw(st.integers(0, len(SMALL_DICTS) - 1), label="config")])
    for _ in range(data.draw(st.integers(1, 2))):
        mutate(data, d, NEAR)
    spec = outcome(parse_yaml_cfg, d)
    if spec is None:
        return
    with torch.device("meta"):
        model = build_model(spec)
    assert 0 < model.num_params() <= MAX_PARAMS


@settings(max_examples=examples(40), deadline=None, derandomize=DERANDOMIZE, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_parsed_darknet_cfgs_build(data):
    """Same for darknet cfgs: what parses builds."""
    torch = pytest.importorskip("torch")
    from yolor_deploy.nn.registry import build_model

    lines = CFG_TEXTS[1].splitlines()  # main-csp-tiny.cfg
    options = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")]
    for _ in range(data.draw(st.integers(1, 2))):
        i = data.draw(st.sampled_from(options))
        lines[i] = lines[i].split("=", 1)[0] + "=" + data.draw(
            st.sampled_from(["1", "2", "3", "5", "-1", "-2", "-3", "8", "16", "32", "64", "0", "1,2", "-1,-3"]))
    spec = outcome(parse_darknet_cfg, "\n".join(lines) + "\n")
    if spec is None:
        return
    with torch.device("meta"):
        model = build_model(spec)
    assert 0 < model.num_params() <= MAX_PARAMS
