"""What counts as a stream source, stream lists, and the package running with no torch."""
from __future__ import annotations

import pytest

from helpers.no_torch import run_without_torch
from yolor_deploy.errors import InputError
from yolor_deploy.streams.sources import parse_stream_sources


def test_sources_and_lists(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    lst = tmp_path / "cams.streams"
    lst.write_text(f"# my cameras\nrtsp://10.0.0.1/s1\n\n  0  # the webcam\n{video}\nhttps://x/live.m3u8\n")
    got = parse_stream_sources(str(lst))
    assert [(s.target, s.live) for s in got] == [("rtsp://10.0.0.1/s1", True), (0, True), (str(video), False),
                                                 ("https://x/live.m3u8", True)]
    assert [s.name for s in parse_stream_sources(["rtmp://h/app", 1])] == ["rtmp://h/app", "cam1"]


def test_bad_list_line_names_file_and_line(tmp_path):
    lst = tmp_path / "cams.txt"
    lst.write_text("rtsp://ok/1\nftp://nope\n")
    with pytest.raises(InputError, match=r"cams.txt line 2: source 'ftp://nope' is not a stream URL"):
        parse_stream_sources(str(lst))
    (tmp_path / "empty.streams").write_text("# nothing\n")
    with pytest.raises(InputError, match="names no source"):
        parse_stream_sources(str(tmp_path / "empty.streams"))


def test_streams_run_without_torch():
    r = run_without_torch("import yolor_deploy.streams.runner, yolor_deploy.cli.stream\n"
                          "from yolor_deploy.streams.track import ByteTracker\n"
                          "ByteTracker().update([[0, 0, 10, 10]], [0.9], [0])\n")
    assert r.stdout.strip().endswith("ok"), r.stderr
