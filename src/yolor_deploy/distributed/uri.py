"""Sources named by URI (`s3://`, `gs://`, `hdfs://`, `file://`, ... whatever pyarrow's filesystems read): listed
and read through `pyarrow.fs`, the layer Ray Data itself reads files with. Images only (a video is read frame by
frame from a local file); a folder URI lists its images non-recursively, sorted, as a local folder does."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..errors import InputError, first_line
from ..fs import NotRegularFileError, check_regular

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(spec: str) -> bool:
    """`scheme://...` (a Windows drive letter or a plain path is not)."""
    return bool(URI.match(spec))


def _filesystem(uri: str):
    try:
        from pyarrow import fs
    except ImportError:
        raise InputError(f"{uri}: reading URIs needs pyarrow (pip install 'yolor-deploy[ray]')") from None
    try:
        return fs, *fs.FileSystem.from_uri(uri)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for unknown schemes
        raise InputError(f"{uri}: cannot open ({first_line(e)})") from None


def list_uri_images(uri: str, suffixes: tuple[str, ...]) -> list[str]:
    """The image URIs under `uri`: itself if it is a file, else the folder's images (non-recursive, sorted)."""
    fs, filesystem, path = _filesystem(uri)
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            found = [path]
        elif info.type == fs.FileType.Directory:
            entries = filesystem.get_file_info(fs.FileSelector(path, recursive=False))
            found = sorted(e.path for e in entries if e.type == fs.FileType.File
                           and not e.base_name.startswith(".") and PurePosixPath(e.path).suffix.lower() in suffixes)
        else:
            raise InputError(f"{uri}: no such file or folder")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{uri}: cannot list ({first_line(e)})") from None
    if not found:
        raise InputError(f"{uri}: holds no images ({' '.join(s[1:] for s in suffixes)}); videos must be local files")
    if any(PurePosixPath(p).suffix.lower() not in suffixes for p in found):
        raise InputError(f"{uri}: not an image file by its suffix; videos must be local files")
    return [_rebuild(uri, path, p) for p in found]


def _rebuild(uri: str, root: str, path: str) -> str:
    """The URI of `path`, found under `root` (the filesystem path of `uri`)."""
    return uri if path == root else uri.rstrip("/") + "/" + path[len(root):].lstrip("/")


def read_uri_bytes(uri: str, limit: int) -> bytes:
    """The bytes of the file at `uri`; InputError naming it when unreadable or larger than `limit` bytes."""
    _, filesystem, path = _filesystem(uri)
    try:
        import pyarrow.fs as pafs

        if isinstance(filesystem, pafs.LocalFileSystem):
            check_regular(path)  # a FIFO or device would block the read; refused before it is opened
        elif filesystem.get_file_info(path).type != pafs.FileType.File:
            raise InputError(f"{uri}: not a regular file")
        with filesystem.open_input_file(path) as f:
            size = f.size()
            if size > limit:
                raise InputError(f"{uri}: {size:,} bytes is too large for an image (limit {limit:,})")
            return f.read()
    except InputError:
        raise
    except NotRegularFileError as e:
        raise InputError(f"{uri}: cannot read ({e.strerror})") from None
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{uri}: cannot read ({first_line(e)})") from None
