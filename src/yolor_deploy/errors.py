"""Error types. Every user-facing failure is one of these, printed by the CLI as one line."""


class YolorDeployError(Exception):
    """Base class: the CLI prints `error: <message>` and exits with status 2. `internal`: see `InternalError`."""

    internal = False


class InternalError(YolorDeployError):
    """An exception nothing in yolor-deploy expected while it read an input (an AttributeError, TypeError,
    KeyError, ... raised by our own code): a bug in yolor-deploy, not a fault of the input. Still one line
    naming the input, saying so; the original exception is chained (`__cause__`). Deliberately not a
    `CheckpointError`/`ConfigError`/`InputError`: code and tests that handle bad input do not swallow it."""

    internal = True


def internal_error(where: str, e: BaseException, doing: str) -> InternalError:
    """The `InternalError` for `e`, raised while `doing` (e.g. "reading the checkpoint") `where` (a file);
    raise it `from e`."""
    return InternalError(f"{where}: internal error in yolor-deploy while {doing} ({type(e).__name__}: "
                         f"{first_line(e, 200)}); this is a bug in yolor-deploy, not in the file: please report it")


class ConfigError(YolorDeployError):
    """A model config (yaml or darknet cfg) is malformed or uses an unknown layer."""


class CheckpointError(YolorDeployError):
    """A checkpoint cannot be read safely or does not fit the requested architecture."""


class UnsafePickleError(CheckpointError):
    """A pickle references a global outside the allowlist."""


class ExportError(YolorDeployError):
    """ONNX export failed."""


class VerificationError(YolorDeployError):
    """The exported model does not match PyTorch within tolerance. `report`: the VerifyReport, when one was made."""

    def __init__(self, message: str, report: object | None = None):
        super().__init__(message)
        self.report = report


class InputError(YolorDeployError):
    """An input image, video, folder or model file is unusable."""


class PixelLimitError(InputError):
    """An image declares or decodes to `width` x `height` pixels, more than the cap `limit`."""

    def __init__(self, message: str, width: int, height: int, limit: int):
        super().__init__(message)
        self.width, self.height, self.limit = width, height, limit


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name when empty), for one-line errors
    about failures inside third-party code (exporters, runtimes, quantizers) whose messages span pages."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return line[:limit]
