"""The bounds a checkpoint must stay within to be read at all (a checkpoint is untrusted input).

Each bound is far above what a real YOLOR checkpoint needs (the largest, yolor-d6, is ~600 MB of fp32
weights, its `data.pkl` well under 1 MB and ~10^5 pickle opcodes; a training checkpoint with `model`,
`ema` and optimizer state at most ~3x that), and low enough that a small hostile file cannot make the
loader allocate gigabytes or run for minutes before it is refused.
"""
from __future__ import annotations

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# --- the file and its zip records ---------------------------------------------------------------------
MAX_FILE_BYTES = 16 * GiB           # the file itself
MAX_ZIP_ENTRIES = 100_000           # real: one record per storage (~2k for yolor-d6) + 6
MAX_PICKLE_BYTES = 32 * MiB         # data.pkl (real: 0.1-1 MB); also every pickle of the legacy format
MAX_SMALL_RECORD_BYTES = 4 * KiB    # version, byteorder, .data/serialization_id, ...
MAX_STORAGE_BYTES = 4 * GiB         # all tensor storages of one file together (real: <= ~1.5 GB)
MAX_DEFLATE_RATIO = 100             # a compressed record may expand at most this much ...
DEFLATE_RATIO_FLOOR = 1 * MiB       # ... or to this size (torch itself never compresses)

# --- the pickle virtual machine -----------------------------------------------------------------------
MAX_PICKLE_OPS = 2_000_000          # opcodes run over the whole file (real: 3e4-1e5 per model in it);
                                    # each leaves at most ~230 bytes behind (EMPTY_SET): ~450 MB, ~3 s worst
MAX_DATA_BYTES = 256 * MiB          # bytes/bytearray/set/numpy data made by allowlisted constructors
MAX_CODEC_CHARS = 16 * MiB          # one `_codecs.encode(str, 'latin1')` (real: numpy scalars, 8 bytes)
MAX_CONTAINER_ITEMS = 1_000_000     # one set()/frozenset() built by REDUCE
MAX_NUMPY_ELEMENTS = 1 << 24        # one numpy array (real: best_fitness, 1 element)
MAX_INT_KEY = (1 << 61) - 2         # int dict keys and set items: below the modulus of int hashing, so
                                    # a crafted file cannot make all keys collide (quadratic dict inserts)

# --- tensors ------------------------------------------------------------------------------------------
MAX_NDIM = 16
TENSOR_ALIAS_FACTOR = 2             # all rebuilt tensors together may cover each storage byte twice
TENSOR_SLACK_BYTES = 1 * MiB        # ... plus this much

# --- the loaded object --------------------------------------------------------------------------------
MAX_MODULES = 100_000               # pickled nn modules in one model (real: ~1-3k)
MAX_MODULE_DEPTH = 64               # their nesting (real: < 10)
MAX_NAME_CHARS = 128                # one module, parameter or buffer name (real: 'running_mean' at most)
MAX_PATH_CHARS = 1024               # a module's dotted name (real: < 40)
MAX_STATE_ENTRIES = 100_000         # parameters and buffers of one model (real: ~2-4k)
MAX_MESSAGE_CHARS = 4000            # error messages quote names from the file
