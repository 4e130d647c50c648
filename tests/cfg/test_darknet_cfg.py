"""Darknet cfg parser (main branch): shipped cfgs, nc retargeting, round trip, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.configs import MINI
from helpers.fixtures import REPO, main_cfg
from yolor_deploy.cfg.darknet import DarknetSpec, parse_darknet_cfg
from yolor_deploy.errors import ConfigError

CONFIGS = REPO / "src" / "yolor_deploy" / "configs" / "main"

P6_ANCHORS = [(19, 27), (44, 40), (38, 94), (96, 68), (86, 152), (180, 137), (140, 301), (303, 264),
              (238, 542), (436, 615), (739, 380), (925, 792)]


@pytest.mark.parametrize("name, nl, n_sections", [
    ("yolor_p6", 4, 235), ("yolor_w6", 4, 235), ("yolor_csp", 3, 188), ("yolor_csp_x", 3, 216)])
def test_shipped_cfgs(name, nl, n_sections):
    spec = parse_darknet_cfg(CONFIGS / f"{name}.cfg")
    assert (spec.branch, spec.nc, spec.na, len(spec.sections)) == ("main", 80, 3, n_sections)
    assert spec.strides == (8, 16, 32, 64)[:nl]
    assert [spec.sections[i].type for i in spec.yolo_layers] == ["yolo"] * nl
    assert all(spec.channels[i] == 255 for i in spec.yolo_layers)
    if nl == 4:
        assert [list(a) for a in spec.anchors] == [P6_ANCHORS[3 * k:3 * k + 3] for k in range(4)]
    assert spec.net["width"] in (512, 1280) and spec.net["policy"] == "steps"


def test_section_options_are_typed():
    spec = parse_darknet_cfg(CONFIGS / "yolor_p6.cfg")
    assert spec.sections[0].type == "reorg" and spec.sections[0].line == 33
    conv = spec.sections[1]
    assert dict(conv.options) == {"batch_normalize": 1, "filters": 64, "size": 3, "stride": 1, "pad": 1,
                                  "activation": "silu"}
    yolo = spec.sections[spec.yolo_layers[0]]
    assert yolo.options["mask"] == (0, 1, 2) and yolo.options["scale_x_y"] == 1.05
    with pytest.raises(TypeError):
        conv.options["filters"] = 3  # read-only


def test_nc_override_matches_hand_edited_fixture():
    edited = parse_darknet_cfg(main_cfg("main-csp-tiny-nc3"))
    ours = parse_darknet_cfg(main_cfg("main-csp-tiny"), nc=3)
    assert ours.sections == edited.sections and ours.nc == edited.nc == 3


def test_nc_override_p6():
    spec = parse_darknet_cfg(CONFIGS / "yolor_p6.cfg", nc=2)
    assert spec.nc == 2 and all(spec.channels[i] == 21 for i in spec.yolo_layers)
    by_type = {}
    for s in spec.sections:
        by_type.setdefault(s.type, []).append(s)
    assert [s.options["filters"] for s in by_type["implicit_mul"]] == [21] * 4
    assert [s.options["filters"] for s in by_type["implicit_add"]] == [256, 384, 512, 640]  # conv inputs: kept
    assert [s.options["classes"] for s in by_type["yolo"]] == [2] * 4


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_nc_override_rejects_non_positive(bad):
    with pytest.raises(ConfigError, match="nc must be a positive integer"):
        parse_darknet_cfg(CONFIGS / "yolor_csp.cfg", nc=bad)


def test_dict_round_trip():
    spec = parse_darknet_cfg(CONFIGS / "yolor_csp.cfg", nc=5)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["branch"] == "main" and data["nc"] == 5
    assert DarknetSpec.from_dict(data) == spec
    data["sections"][-1]["options"]["classes"] = 4
    with pytest.raises(ConfigError):
        DarknetSpec.from_dict(data)




def test_mini_cfg_text_and_file(tmp_path):
    spec = parse_darknet_cfg(MINI)
    assert (spec.nc, spec.strides, spec.channels, spec.source) == (1, (2,), (8, 18, 18), "<string>")
    f = tmp_path / "mini.cfg"
    f.write_text(MINI)
    assert parse_darknet_cfg(str(f)).sections == spec.sections


@pytest.mark.parametrize("old, new, line, message", [
    ("[yolo]", "[foo]", 19, "unknown layer type [foo]"),
    ("filters=8", "filters=eight", 6, "bad value filters='eight' (expected an integer)"),
    ("size=3\n", "", 4, "[convolutional] is missing option 'size'"),
    ("activation=silu", "activation=relu6", 10, "unknown activation 'relu6'"),
    ("[yolo]", "[route]\nlayers=-1,5\n\n[yolo]", 20, "layers=5 refers to a non-existent layer"),
    ("[yolo]", "[shortcut]\nfrom=-9\n\n[yolo]", 20, "from=-9 refers to a non-existent layer"),
    ("filters=18", "filters=17", 19, "input has 17 channels, expected len(mask)*(classes+5) = 18"),
    ("num=3", "num=4", 23, "num=4 but 3 anchors are given"),
    ("pad=1\nactivation=silu", "pad=1\npad=0\nactivation=silu", 10, "option 'pad' given twice"),
    ("width=64", "width=64\n[convolutional]\nbogus", 4, "expected 'key=value', got 'bogus'"),
    ("stride=2", "stride=2\nweights=5", 9, "unsupported option 'weights' in [convolutional]"),
    ("size=3", "size=3,5", 7, "MixConv2d) is not supported"),
])
def test_errors_name_file_and_line(tmp_path, old, new, line, message):
    assert old in MINI
    f = tmp_path / "bad.cfg"
    f.write_text(MINI.replace(old, new, 1))
    with pytest.raises(ConfigError) as e:
        parse_darknet_cfg(f)
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith(f"{f}:{line}: "), text
    assert message in text, text


def test_error_cases_without_line(tmp_path):
    with pytest.raises(ConfigError, match="must start with \\[net\\]"):
        parse_darknet_cfg(MINI.replace("[net]\nwidth=64\n", ""))
    with pytest.raises(ConfigError, match="no \\[yolo\\] layer"):
        parse_darknet_cfg(MINI.split("[yolo]")[0])
    with pytest.raises(ConfigError, match="cannot read cfg"):
        parse_darknet_cfg(tmp_path / "missing.cfg")


def test_retarget_needs_a_head_conv():
    cfg = MINI.replace("[yolo]", "[maxpool]\nsize=1\nstride=1\n\n[yolo]")
    assert parse_darknet_cfg(cfg).nc == 1
    with pytest.raises(ConfigError, match="cannot retarget nc"):
        parse_darknet_cfg(cfg, nc=3)


def test_parser_does_not_import_torch():
    code = "import yolor_deploy.cfg.darknet, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
