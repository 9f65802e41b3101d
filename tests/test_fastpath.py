"""The Python fast path of backends without a compiled one (fastselu/_fastpath.py): it takes
the common calls, and every call gives what the general path gives (result, identity of the
returned object, errors)."""
import numpy as np
import pytest

import fastselu
from fastselu import _backends, _fastpath
from util import same_floats, switched_backend

BACKENDS = [b for b in ("numpy", "numba") if b in fastselu.available_backends()]


def cases():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((7, 5)) * 3).astype(dtype)
        g = rng.standard_normal((7, 5)).astype(dtype)
        yield "new", dtype, lambda x=x: fastselu.selu(x)
        yield "out", dtype, lambda x=x: fastselu.selu(x, out=np.empty_like(x))
        yield "inplace", dtype, lambda x=x: fastselu.selu(x.copy(), inplace=True)
        yield "out=x", dtype, lambda x=x: (lambda c: fastselu.selu(c, out=c))(x.copy())
        yield "read-only out", dtype, lambda x=x: (lambda c: (c.setflags(write=False), fastselu.selu(x, out=c)))(x.copy())
        yield "bwd", dtype, lambda g=g, x=x: fastselu.selu_backward(g, x)
        yield "bwd y", dtype, lambda g=g, x=x: fastselu.selu_backward(g, x, is_result=True)
        yield "bwd out=g", dtype, lambda g=g, x=x: (lambda c: fastselu.selu_backward(c, x, out=c))(g.copy())
        yield "bwd out=x", dtype, lambda g=g, x=x: (lambda c: fastselu.selu_backward(g, c, out=c))(x.copy())
        yield "bwd out", dtype, lambda g=g, x=x: fastselu.selu_backward(g, x, out=np.empty_like(x))
        # not taken: the general path's own cases
        yield "strided", dtype, lambda x=x: fastselu.selu(x[:, ::2])
        yield "0-d", dtype, lambda: fastselu.selu(dtype(-1.5))
        yield "partial overlap", dtype, lambda x=x: (lambda c: fastselu.selu(c[1:], out=c[:-1]))(x.ravel().copy())
        yield "mixed dtypes", dtype, lambda g=g, x=x: fastselu.selu_backward(g.astype(np.float16), x)


def outcome(call):
    try:
        r = call()
        return "ok", np.array(r, copy=True)
    except Exception as exc:  # noqa: BLE001 - the very same error either way is the point
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("name", BACKENDS)
def test_fast_path_matches_general_path(name, monkeypatch):
    with switched_backend(name):
        assert _backends.fast_forward.__module__ == _fastpath.__name__
        for label, dtype, call in cases():
            fast = outcome(call)
            with monkeypatch.context() as m:
                m.setattr(_backends, "fast_forward", lambda *a: NotImplemented)
                m.setattr(_backends, "fast_backward", lambda *a: NotImplemented)
                general = outcome(call)
            assert fast[0] == general[0], label
            if fast[0] == "ok":
                assert same_floats(fast[1], general[1]), (label, dtype)
            else:
                assert fast[1] == general[1], label


@pytest.mark.parametrize("name", BACKENDS)
def test_fast_path_is_taken_and_declines(name):
    with switched_backend(name):
        x = np.linspace(-3, 3, 10)
        assert _backends.fast_forward(x, None, False) is not NotImplemented
        o = np.empty_like(x)
        assert _backends.fast_backward(x, x, False, o) is o
        ro = np.empty_like(x)
        ro.flags.writeable = False
        for args in [(x[::2], None, False), (x, ro, False), (x.astype(np.float16), None, False),
                     (x.astype(">f8"), None, False), (np.float64(1.0), None, False),
                     (x[1:], x[:-1], False), (np.ma.array(x), None, False), (x, o, True)]:
            assert _backends.fast_forward(*args) is NotImplemented, args
        assert _backends.fast_backward(x, x[:5], False, None) is NotImplemented
        assert _backends.fast_backward(x, x, False, x[::-1]) is NotImplemented
        assert _backends.fast_backward(x, x.astype(np.float32), False, None) is NotImplemented
        xr = x.copy()
        xr.flags.writeable = False
        assert _backends.fast_backward(x, xr, False, xr) is NotImplemented
