"""Blocked, threaded elementwise work (``nn.functional.blocks``): every block and thread count gives exactly the
numbers of one pass over the whole array, and every row is visited once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lamb_edu import Tensor, host_threads
from lamb_edu.backend import to_numpy
from lamb_edu.nn.functional import blocks, gelu, layer_norm, self_attention

rng = np.random.default_rng(0)


@pytest.fixture
def restore_threads():
    threads = host_threads.num_threads()
    yield
    host_threads.set_num_threads(threads)


def test_for_blocks_visits_every_row_once_on_several_threads(monkeypatch, restore_threads):
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 30)
    host_threads.set_num_threads(3)
    seen, names = np.zeros(103, int), set()

    def visit(block):
        seen[block] += 1
        names.add(threading.current_thread().name)

    blocks.for_blocks(visit, 103, 7)  # blocks of 4 rows, 26 of them
    assert np.all(seen == 1) and len(blocks.row_blocks(103, 7)) == 26
    assert "MainThread" in names and len(names) >= 2  # the caller and the pool's workers share them
    with pytest.raises(ValueError, match="threads"):
        host_threads.set_num_threads(0)


def gradients(function, arrays, upstream):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = function(*tensors)
    out.backward(upstream)
    return [to_numpy(out.data)] + [to_numpy(t.grad) for t in tensors]


CASES = {
    "gelu": (lambda x: gelu(x), [rng.normal(size=(37, 29))]),
    "layer_norm": (lambda x, w, b: layer_norm(x, w, b, 1e-12), [rng.normal(size=(5, 13, 8)), rng.normal(size=8),
                                                                   rng.normal(size=8)]),
    "self_attention": (lambda x, *p: self_attention(x, [(p[0], p[1]), (p[2], p[3]), (p[4], p[5])], 2),
                       [rng.normal(size=(7, 5, 4))] + [rng.normal(size=s) for s in [(4, 4), (4,)] * 3]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_blocks_and_threads_give_the_numbers_of_one_pass(monkeypatch, restore_threads, name):
    function, arrays = CASES[name]
    upstream = rng.normal(size=to_numpy(function(*[Tensor(a) for a in arrays]).data).shape)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 1 << 30)
    host_threads.set_num_threads(1)
    whole = gradients(function, arrays, upstream)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 40)  # many small blocks
    for threads in (1, 3):
        host_threads.set_num_threads(threads)
        for got, expected in zip(gradients(function, arrays, upstream), whole):
            np.testing.assert_array_equal(got, expected)
