"""Safe loading: formats accepted, everything else refused with a one-line error."""
from __future__ import annotations

import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

from helpers.fixtures import fixture_path, load_input
from yolor_deploy.checkpoint import load_checkpoint, save_checkpoint
from yolor_deploy.checkpoint.allowlist import resolve_global
from yolor_deploy.errors import CheckpointError, UnsafePickleError
from yolor_deploy.nn.registry import create_model


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker), "epoch": -1}, bad)
    with pytest.raises(UnsafePickleError) as e:
        load_checkpoint(bad)
    msg = str(e.value)
    assert "system" in msg and "evil.pt" in msg and "\n" not in msg
    assert not marker.exists()


def test_raw_pickle_with_foreign_global_is_refused(tmp_path):
    bad = tmp_path / "raw.pt"
    bad.write_bytes(pickle.dumps({"model": _Evil(tmp_path / "x")}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"raw.pt: refusing global '(posix|os|nt)\.system'"):
        load_checkpoint(bad)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("models.common", "Evil"),
                                         ("torch", "load"), ("numpy", "load")])
def test_allowlist_rejects(module, name):
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        resolve_global(module, name)


def test_truncated_file(tmp_path):
    data = fixture_path("paper-p6-tiny.pt").read_bytes()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"trunc.pt: unreadable checkpoint"):
        load_checkpoint(bad)


def test_random_bytes(tmp_path):
    bad = tmp_path / "noise.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"noise.pt: not a PyTorch checkpoint"):
        load_checkpoint(bad)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="file not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_paper_checkpoint_is_fp32_batchnorm_eval():
    m = load_checkpoint(fixture_path("paper-p6-tiny-nc3.pt"))
    assert not m.training and m.names == ["cat", "dog", "person"] and m.nc == 3
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in m.parameters())
    kinds = {type(x).__name__ for x in m.modules()}
    assert "BatchNorm2d" in kinds and "SyncBatchNorm" not in kinds
    assert {x.eps for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)} == {1e-3}


def test_our_format_roundtrip_weights_only(tmp_path):
    m = load_checkpoint(fixture_path("paper-ssss-s2d.pt"))
    out = save_checkpoint(m, tmp_path / "ours.pt")
    raw = torch.load(out, weights_only=True)  # plain data only
    assert raw["format"] == "yolor-deploy" and raw["branch"] == "paper"
    m2 = load_checkpoint(out)
    x = torch.from_numpy(load_input("256x320"))
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert m2.names == m.names


def test_paper_checkpoint_with_unfitting_cfg(tmp_path):
    with pytest.raises(CheckpointError, match=r"paper-p6-tiny.pt: weights do not fit the architecture: .*shape"):
        load_checkpoint(fixture_path("paper-p6-tiny.pt"), cfg="yolor-p6")


def test_not_a_yolor_checkpoint(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, p)
    with pytest.raises(CheckpointError, match="not a YOLOR checkpoint"):
        load_checkpoint(p)


def test_zip_without_pickle(tmp_path):
    p = tmp_path / "empty.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("x/readme.txt", "hello")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_checkpoint(p)


def test_create_model_seeded_is_reproducible():
    a = create_model("yolor-ssss-s2d", nc=2, seed=3)
    b = create_model("yolor-ssss-s2d", nc=2, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_wrong_or_missing_cfg_is_one_short_line_with_the_fitting_cfg(tmp_path):
    """A main-branch state_dict with a wrong --cfg: counts and the first mismatch only, and the .cfg beside the
    checkpoint that fits; without --cfg the error names the flag."""
    import shutil

    for name in ("main-csp-tiny.pt", "main-csp-tiny.cfg", "main-csp-tiny-nc3.cfg", "main-p6-tiny.cfg"):
        shutil.copy(fixture_path(name), tmp_path / name)
    ck = tmp_path / "main-csp-tiny.pt"
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ck, cfg=tmp_path / "main-p6-tiny.cfg")
    msg = str(e.value)
    assert "\n" not in msg and len(msg.replace(str(tmp_path), "")) < 400, msg
    assert re.search(r"\d+ of the model's \d+ tensors missing \(first: module_list\.\d+\.\S+\), \d+ unexpected "
                     r"\(first: \S+\), \d+ with another shape \(first: \S+ is \([\d, ]+\) in the checkpoint, "
                     r"\([\d, ]+\) in the model\); these fit: \S+main-csp-tiny\.cfg$", msg), msg
    with pytest.raises(CheckpointError, match=r"main-csp-tiny.pt: a main-branch \(darknet\) state_dict needs its "
                                              r"config: pass --cfg .*; its shapes fit: \S+main-csp-tiny\.cfg$"):
        load_checkpoint(ck)
    (tmp_path / "main-csp-tiny.cfg").unlink()
    with pytest.raises(CheckpointError, match=r"none of the registered variants \(yolor_p6, .*\) fits$"):
        load_checkpoint(ck, cfg="yolor_csp")
