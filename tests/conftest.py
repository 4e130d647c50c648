"""pytest hooks and autouse fixtures only; shared helpers live in the `helpers` package."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _torch_threads():
    """Run every test with 2 intra-op threads and restore afterwards: the upstream references were
    made with 2 threads, and conv accumulation order (hence the last bits) depends on the count."""
    try:
        import torch
    except ImportError:  # torch-free test environments
        yield
        return
    from yolor_deploy.nn.decode import Decode

    before, decode = torch.get_num_threads(), Decode.forward
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    # export-time rewrites must never leak out of their context into eager models
    assert Decode.forward is decode, "Decode.forward was left patched"


def pytest_report_header(config):
    """The CPU and its ISA flags beside every number the tests print (fp32 results depend on them)."""
    from yolor_deploy.sysinfo import cpu_line

    return [f"cpu: {cpu_line()}"]
