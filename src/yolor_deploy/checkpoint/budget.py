"""The budgets one checkpoint file is read under (the bounds themselves are in `limits.py`)."""
from __future__ import annotations

from collections.abc import Callable

from ..errors import CheckpointError
from . import limits


class LoadContext:
    """Budgets shared by every pickle of one file, and the archive's storage source."""

    def __init__(self, persistent_load: Callable[[LoadContext, object], object]):
        self.persistent_load = persistent_load
        self.ops = 0
        self.data_bytes = 0
        self.storage_bytes = 0
        self.tensor_bytes = 0

    def tick(self) -> None:
        self.ops += 1
        if self.ops > limits.MAX_PICKLE_OPS:
            raise CheckpointError(f"the pickle runs more than {limits.MAX_PICKLE_OPS:,} opcodes (no real "
                                  "checkpoint does); refused")

    def charge_data(self, nbytes: int, what: str) -> None:
        self.data_bytes += nbytes
        if self.data_bytes > limits.MAX_DATA_BYTES:
            raise CheckpointError(f"{what}: the pickle builds more than {limits.MAX_DATA_BYTES >> 20} MiB of "
                                  "plain data (bytes, sets, arrays); refused")

    def charge_storage(self, nbytes: int) -> None:
        self.storage_bytes += nbytes
        if self.storage_bytes > limits.MAX_STORAGE_BYTES:
            raise CheckpointError(f"tensor storages exceed {limits.MAX_STORAGE_BYTES >> 30} GiB in all; refused")

    def charge_tensor(self, nbytes: int, desc: str) -> None:
        self.tensor_bytes += nbytes
        budget = limits.TENSOR_ALIAS_FACTOR * self.storage_bytes + limits.TENSOR_SLACK_BYTES
        if self.tensor_bytes > budget:
            raise CheckpointError(f"tensor {desc}: the tensors built so far ({self.tensor_bytes:,} bytes) would "
                                  f"exceed {limits.TENSOR_ALIAS_FACTOR}x the storage bytes in the file "
                                  f"({self.storage_bytes:,}); refused")
