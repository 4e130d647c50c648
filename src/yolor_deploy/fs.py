"""Write outputs to a temporary name beside the target, then rename: no half-written file is
ever visible under the final name (`os.replace` is atomic on one filesystem)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotRegularFileError(OSError):
    """A path that names a FIFO, a device, a socket or a folder where a file is read: refused before it is
    opened (opening a FIFO blocks until a writer comes; reading a device may never end). `strerror` says what
    it is, so `cannot read ({e.strerror})` messages name it."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _not_regular(mode: int, path: str | Path) -> NotRegularFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return NotRegularFileError(0, f"{kind}, not a regular file", str(path))


def check_regular(path: str | Path) -> os.stat_result:
    """The `os.stat` of `path` (symlinks followed) when it is a regular file; NotRegularFileError when it is a
    FIFO, device, socket or folder (stat never opens it, so never blocks); FileNotFoundError etc. as os.stat."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(st.st_mode, path)
    return st


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for binary reading only if it is a regular file, race-free: opened with O_NONBLOCK (a FIFO
    swapped in after a check does not block the open), checked with fstat, then made blocking again."""
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode, path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def host_tag() -> str:
    """This machine's name as it appears in temp names: letters, digits and `-` only (dots of a FQDN become
    `-`), at most 40 characters."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_prefix(stem: str) -> str:
    """`.STEM.HOST.PID.`: how every temp name of this process starts (files and IR/optimize work folders), so
    that on storage shared by several machines (a Ray cluster) a temp is judged by its own host's PIDs."""
    return f".{stem}.{host_tag()}.{os.getpid()}."


def temp_name(path: Path) -> Path:
    """A hidden sibling of `path` that keeps its suffix (OpenCV picks codecs by suffix)."""
    return path.with_name(f"{temp_prefix(path.stem)}tmp{path.suffix}")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


# `.STEM.HOST.PID.tmp[.suffix]` (atomic_path) and `.STEM.HOST.PID.XXXXXXXX.ir.tmp` folders (an IR or an
# optimize run being written). Names without a host (older versions) never match: they are left alone.
_TEMP = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.(tmp(\.[^.]*)?|[^.]+\.ir\.tmp)$")
_cleaned: set[str] = set()  # folders already swept by this process


def remove_stale_temps(path: Path) -> None:
    """Remove the temporaries that killed writers left in `path`'s folder: only those named with this host
    whose PID is dead here (a temp of another host, on shared storage, may be another node's file in flight:
    it is left). One scan per folder per process: writing 10,000 results into a folder must not list it
    10,000 times."""
    folder = os.path.abspath(path.parent)
    if folder in _cleaned:
        return
    _cleaned.add(folder)
    try:
        names = [e for e in os.scandir(folder) if e.name.startswith(".") and ".tmp" in e.name]
    except OSError:
        return
    host = host_tag()
    for entry in names:
        m = _TEMP.match(entry.name)
        if not m or m["host"] != host or int(m["pid"]) == os.getpid() or pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)



@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Make `dst` hold `src`'s bytes, atomically: a hard link where the filesystem allows (no second copy
    of the data), else a copy. `src` stays where it is."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    write_text(path, json.dumps(obj, indent=indent) + "\n")
