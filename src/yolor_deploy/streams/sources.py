"""What a live source is: a URL OpenCV's FFmpeg backend opens (rtsp://, rtmp://, http(s):// MJPEG or HLS), a
webcam index (`0`), a local video file, or a `.txt` / `.streams` list of those (one a line, `#` comments)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
LIST_SUFFIXES = (".txt", ".streams")


@dataclass(frozen=True)
class StreamSource:
    """One source: `target` is what `cv2.VideoCapture` opens (a URL, a path, or a camera index); `live`: a
    camera or network stream (reconnected when it drops), not a file read to its end."""

    name: str
    target: str | int
    live: bool


def _one(spec: str, origin: str) -> StreamSource:
    spec = spec.strip()
    if spec.isdigit():
        return StreamSource(f"cam{spec}", int(spec), True)
    if spec.lower().startswith(URL_SCHEMES):
        return StreamSource(spec, spec, True)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{origin}: source {spec!r} is not a stream URL ({', '.join(URL_SCHEMES[:5])}), "
                         "a camera index or an existing video file")
    return StreamSource(str(path), str(path), False)


def parse_stream_sources(spec: str | int | list[str | int]) -> list[StreamSource]:
    """A source, a list of them, or a `.txt`/`.streams` file listing them -> one `StreamSource` each."""
    if isinstance(spec, (list, tuple)):
        return [s for x in spec for s in parse_stream_sources(x)]
    if isinstance(spec, int):
        return [StreamSource(f"cam{spec}", spec, True)]
    if spec.lower().endswith(LIST_SUFFIXES) and not spec.lower().startswith(URL_SCHEMES):
        path = Path(spec)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{spec}: cannot read the stream list ({e.__class__.__name__}: {e})") from None
        items = [ln.split("#", 1)[0].strip() for ln in lines]
        out = [_one(x, f"{spec} line {i + 1}") for i, x in enumerate(items) if x]
        if not out:
            raise InputError(f"{spec}: the stream list names no source")
        return out
    return [_one(spec, spec)]


def is_stream_spec(spec: str) -> bool:
    """True when `spec` names a live source or a stream list (what `predict` hands to the stream runner)."""
    s = spec.strip().lower()
    return s.isdigit() or s.startswith(URL_SCHEMES) or s.endswith(".streams")
