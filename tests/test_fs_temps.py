"""Temp names carry the host and the PID (issue 20): on storage shared by several machines (a Ray cluster),
`remove_stale_temps` removes only this host's temps whose PID is dead here; another host's temp (maybe a
shard in flight on another node, whatever its PID means here) and a live process's temp are left."""
from __future__ import annotations

import os
import subprocess
import sys

from yolor_deploy import fs


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no such process now (PIDs are not reused this quickly)


def test_temp_names_carry_host_and_pid(tmp_path):
    name = fs.temp_name(tmp_path / "out.jpg").name
    assert name == f".out.{fs.host_tag()}.{os.getpid()}.tmp.jpg"
    assert fs._TEMP.match(name)["host"] == fs.host_tag() and "." not in fs.host_tag()


def test_only_this_hosts_dead_temps_are_removed(tmp_path, monkeypatch):
    host, dead, live = fs.host_tag(), dead_pid(), os.getppid()
    names = {
        f".a.{host}.{dead}.tmp.jpg": False,  # this host, dead writer: removed
        f".b.{host}.{dead}.abcd1234.ir.tmp": False,  # an IR work folder of a dead writer: removed
        f".c.other-node.{dead}.tmp.jpg": True,  # another host: its PID says nothing here
        f".d.other-node.{dead}.abcd1234.ir.tmp": True,
        f".e.{host}.{live}.tmp.jpg": True,  # a live writer on this host
        f".f.{dead}.tmp.jpg": True,  # an old name without a host: left alone
        "g.jpg": True,
    }
    for name in names:
        if name.endswith(".ir.tmp"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "model.bin").write_bytes(b"x")
        else:
            (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(fs, "_cleaned", set())
    fs.write_text(tmp_path / "result.txt", "ok")  # every writer sweeps its folder once
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept} | {"result.txt"}


def test_another_host_name_is_told_apart(tmp_path, monkeypatch):
    """The same folder seen from another node: what this host wrote is that node's 'other host'."""
    dead = dead_pid()
    mine = tmp_path / f".a.{fs.host_tag()}.{dead}.tmp.jpg"
    mine.write_bytes(b"x")
    monkeypatch.setattr(fs.socket, "gethostname", lambda: "node-2.cluster.local")
    monkeypatch.setattr(fs, "_cleaned", set())
    assert fs.host_tag() == "node-2-cluster-local"
    fs.remove_stale_temps(tmp_path / "x.jpg")
    assert mine.exists()
