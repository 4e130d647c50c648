"""`yolor-deploy optimize`: the fastest model this machine can run within an accuracy budget.

Candidates (ONNX Runtime fp32 / int8 QDQ, OpenVINO fp32 / bf16 / NNCF int8, fp16 on a GPU provider)
are declarative specs (`candidates.py`) filtered by what the machine has (`machine.py`), built
(`build.py`), timed interleaved (`timing.py`), scored (`accuracy.py`), and the fastest within the
budget is chosen (`choose.py`); `run.optimize_model` writes report.json, report.png and best.*.
Torch-free: a checkpoint is exported by the CLI first.
"""
from ..runtime.backends.report_hint import REPORT_NAME
from .candidates import CANDIDATES, CandidateSpec
from .run import OptimizeOptions, optimize_model

__all__ = ["CANDIDATES", "REPORT_NAME", "CandidateSpec", "OptimizeOptions", "optimize_model"]
