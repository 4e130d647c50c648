"""The stream loop: one reader thread per source, the frames on hand stacked into one detector call (the
Detector cuts them into batches of its batch size: all streams in one inference for a dynamic-batch model),
tracking per stream, outputs written as results come, stats per stream. Iterating yields `StreamResult`s."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.detector import Detector
from ..runtime.inputs.opencv import cv2
from ..runtime.results.detections import Detections
from .frames import Frame, StreamStats
from .outputs import JsonlWriter, SegmentedVideo, save_frame
from .reader import ReaderSettings, StreamReader
from .sources import StreamSource, parse_stream_sources
from .track import ByteTracker


@dataclass
class StreamResult:
    """Detections on frame `frame` of stream `stream` (`name`); `track_ids`: one per box (-1 untracked) or None."""

    stream: int
    name: str
    frame: int
    t_capture: float
    wall: float
    latency_ms: float
    detections: Detections
    track_ids: np.ndarray | None = None

    def to_record(self) -> dict:
        d = self.detections
        dets = [{"xyxy": [round(float(v), 2) for v in d.xyxy[i]], "score": round(float(d.scores[i]), 5),
                 "class": int(d.classes[i]), "name": d.name(int(d.classes[i])),
                 **({"track_id": int(self.track_ids[i])} if self.track_ids is not None else {})}
                for i in range(len(d))]
        return {"stream": self.name, "stream_index": self.stream, "frame": self.frame,
                "capture_time": round(self.wall, 6), "latency_ms": round(self.latency_ms, 2), "detections": dets}

    def plot(self) -> np.ndarray:
        im = self.detections.plot()
        if self.track_ids is not None:
            for box, tid in zip(self.detections.xyxy, self.track_ids):
                if tid >= 0:
                    x, y = int(box[0]), int(box[3])
                    cv2.putText(im, f"id {tid}", (x + 2, max(y - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                                (255, 255, 255), 1, cv2.LINE_AA)
        return im


@dataclass
class StreamOutputs:
    """Where results go: `folder/results.jsonl`, `folder/video/<stream>_<nnnn>.avi` segments of `segment_s`
    seconds (`video`), `folder/frames/` (`save_frames`)."""

    folder: Path
    video: bool = True
    segment_s: float = 10.0
    fps: float = 15.0
    save_frames: bool = False


def _stem(name: str, i: int) -> str:
    return f"{i:02d}_" + (re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[-40:] or "stream")


@dataclass
class StreamRunner:
    detector: Detector
    sources: Sequence[StreamSource]
    settings: ReaderSettings = field(default_factory=ReaderSettings)
    track: bool = False
    outputs: StreamOutputs | None = None

    def __post_init__(self) -> None:
        self.stats = [StreamStats(s.name) for s in self.sources]
        self.readers = [StreamReader(i, s, self.settings, st)
                        for i, (s, st) in enumerate(zip(self.sources, self.stats))]
        self.trackers = [ByteTracker() for _ in self.sources] if self.track else None
        self._stop = threading.Event()
        if not self.detector.backend.input_shape[0]:  # dynamic batch: every stream's frame in one call
            self.detector.batch_size = max(self.detector.batch_size, len(self.sources))

    def stop(self) -> None:
        self._stop.set()

    def _collect(self) -> list[Frame]:
        live = [r for r in self.readers if not r.exhausted]
        frames = [f for r in live if (f := r.get(0.0)) is not None]
        if not frames and live:
            first = live[0].get(0.02)
            frames = [first] if first is not None else []
        return frames

    def __iter__(self) -> Iterator[StreamResult]:
        jsonl = videos = None
        if self.outputs:
            jsonl = JsonlWriter(self.outputs.folder / "results.jsonl")
            videos = [SegmentedVideo(self.outputs.folder / "video", _stem(s.name, i), self.outputs.segment_s,
                                     self.outputs.fps) for i, s in enumerate(self.sources)] \
                if self.outputs.video else None
        for r in self.readers:
            r.start()
        try:
            while not self._stop.is_set() and not all(r.exhausted for r in self.readers):
                frames = self._collect()
                if not frames:
                    continue
                for frame, dets in zip(frames, self.detector([f.image for f in frames])):
                    result = self._result(frame, dets)
                    if jsonl is not None:
                        jsonl.write(result.to_record())
                    if self.outputs is not None and (videos is not None or self.outputs.save_frames):
                        self._write_pictures(result, videos)
                    yield result
        finally:
            for r in self.readers:
                r.stop()
            for r in self.readers:
                r.join(timeout=5)
            if jsonl is not None:
                jsonl.close()
            for v in videos or []:
                v.close()

    def _result(self, frame: Frame, dets: Detections) -> StreamResult:
        ids = None
        if self.trackers is not None:
            ids = self.trackers[frame.stream].update(dets.xyxy, dets.scores, dets.classes)
        lat = (time.monotonic() - frame.t_capture) * 1000
        st = self.stats[frame.stream]
        with st.lock:
            st.processed += 1
            st.latency_ms.append(lat)
        dets.frame = frame.index
        return StreamResult(frame.stream, self.sources[frame.stream].name, frame.index, frame.t_capture,
                            frame.wall, lat, dets, ids)

    def _write_pictures(self, result: StreamResult, videos: list[SegmentedVideo] | None) -> None:
        assert self.outputs is not None
        im = result.plot()
        if videos is not None:
            videos[result.stream].write(im, result.t_capture)
        if self.outputs.save_frames:
            save_frame(self.outputs.folder / "frames", _stem(result.name, result.stream), result.frame, im)


def stream(detector: Detector, source: str | int | list, track: bool = False, vid_stride: int = 1,
           no_drop: bool = False, outputs: StreamOutputs | None = None, **reader: float) -> StreamRunner:
    """`for result in stream(detector, "rtsp://...", track=True): ...` (also `detector`-free sources lists)."""
    settings = ReaderSettings(vid_stride=vid_stride, no_drop=no_drop, **reader)  # type: ignore[arg-type]
    return StreamRunner(detector, parse_stream_sources(source), settings, track, outputs)
