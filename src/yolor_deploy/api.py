"""`yolor_deploy.Detector`: the runtime's `Detector` with what is built on the runtime, as methods.

The runtime (`runtime/`) sits below live streams (`streams/`), so `runtime.Detector` cannot know them. The
top-level `Detector` adds them: `for r in Detector("model.onnx").stream("rtsp://...", track=True): ...`.
Everything else is the runtime's Detector unchanged (it is a subclass: the same constructor, results and
backends; no torch is imported).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .runtime import Detector as RuntimeDetector

if TYPE_CHECKING:
    from .streams.runner import StreamOutputs, StreamRunner


class Detector(RuntimeDetector):
    """`runtime.Detector` plus `stream()`; see `runtime.Detector` for the constructor and calls."""

    def stream(self, source: str | int | Path | list, track: bool = False, vid_stride: int = 1,
               no_drop: bool = False, outputs: StreamOutputs | None = None, **reader: Any) -> StreamRunner:
        """Results of live or recorded video, frame by frame: `source` is an `rtsp://`, `rtmp://`, `http(s)://`
        (MJPEG or HLS) URL, a webcam index, a video file, a `.streams` text file listing sources, or a list
        of them (frames of several streams share model calls). Latest-frame mode for live sources unless
        `no_drop`; `track=True` gives each object a track id (ByteTrack); `outputs` writes segments, JSON
        Lines and frames; `reader` tunes reconnects (`retries`, `backoff`, `backoff_max`). Iterate the
        returned runner; `.stop()` ends it, `.stats` has per-stream counts. See `streams.runner.stream`."""
        from .streams.runner import stream

        src: str | int | list = str(source) if isinstance(source, Path) else source
        return stream(self, src, track=track, vid_stride=vid_stride, no_drop=no_drop, outputs=outputs, **reader)
