"""`yolor-deploy demo` numbers its steps 1/n .. n/n, n the steps that run (the bundled model: 4 with val; a
random-weight variant: 3)."""
from __future__ import annotations

import re

import pytest

from yolor_deploy.cli.demo import demo_steps


@pytest.mark.parametrize("variant, n", [(None, 4), ("yolor-p6", 3)])
def test_demo_steps_count_to_their_total(variant, n):
    steps = demo_steps(variant)
    assert [re.match(r"(\d+)/(\d+) ", s).groups() for s in steps] == [(str(i), str(n)) for i in range(1, n + 1)]
    assert ("val" in steps[-1]) == (variant is None)
