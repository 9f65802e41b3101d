"""The public API table of the SPEC: names, signatures, return identities, the SELU object."""

import inspect
import threading

import numpy as np

import fastselu
from util import same_floats

PUBLIC = {
    "ALPHA",
    "SCALE",
    "selu",
    "selu_",
    "selu_backward",
    "SELU",
    "get_backend",
    "set_backend",
    "available_backends",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "__version__",
    # self-normalizing companions
    "alpha_dropout",
    "selu_alpha_dropout",
    "alpha_dropout_backward",
    "selu_alpha_dropout_backward",
    "lecun_normal",
}


def test_public_names():
    for name in PUBLIC:
        assert hasattr(fastselu, name), name
    assert set(fastselu.__all__) == PUBLIC
    assert fastselu.__version__ == "0.1.0"
    from fastselu._version import __version__

    assert fastselu.__version__ is __version__


def test_signatures():
    sig = inspect.signature(fastselu.selu)
    assert list(sig.parameters) == ["x", "out", "inplace"]
    assert sig.parameters["inplace"].kind is inspect.Parameter.KEYWORD_ONLY
    sig = inspect.signature(fastselu.selu_backward)
    assert list(sig.parameters) == ["grad_output", "x", "is_result", "out"]
    assert sig.parameters["is_result"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["out"].kind is inspect.Parameter.KEYWORD_ONLY


def test_py_typed_marker():
    from pathlib import Path

    assert (Path(fastselu.__file__).parent / "py.typed").exists()


def test_values(backend):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    want = np.where(x > 0, fastselu.SCALE * x, 1.7580993408473768 * np.expm1(x))
    np.testing.assert_allclose(fastselu.selu(x), want, rtol=4e-16, atol=0)
    d = np.where(x > 0, fastselu.SCALE, 1.7580993408473768 * np.exp(x))
    np.testing.assert_allclose(fastselu.selu_backward(np.ones(5), x), d, rtol=4e-16)
    y = fastselu.selu(x)
    np.testing.assert_allclose(fastselu.selu_backward(np.ones(5), y, is_result=True), d, rtol=1e-15)


def test_selu_returns_new_array_and_leaves_input(backend):
    x = np.array([-1.0, 1.0])
    y = fastselu.selu(x)
    assert y is not x and not np.shares_memory(x, y)
    assert np.array_equal(x, [-1.0, 1.0])


def test_selu_inplace_returns_same_object(backend):
    x = np.array([-1.0, 1.0], dtype=np.float32)
    want = fastselu.selu(x)
    assert fastselu.selu_(x) is x and same_floats(x, want)
    x = np.array([-1.0, 1.0])
    want = fastselu.selu(x)
    assert fastselu.selu(x, inplace=True) is x and same_floats(x, want)


def test_selu_backward_modes(backend):
    x = np.linspace(-5, 5, 101)
    g = np.linspace(2, -2, 101)
    y = fastselu.selu(x)
    dx = fastselu.selu_backward(g, x)
    dy = fastselu.selu_backward(g, y, is_result=True)
    np.testing.assert_allclose(dx, dy, rtol=1e-14, atol=1e-300)
    for out_is in ("g", "x"):
        gg, xx = g.copy(), x.copy()
        out = gg if out_is == "g" else xx
        assert fastselu.selu_backward(gg, xx, out=out) is out and same_floats(out, dx)
        gg, yy = g.copy(), y.copy()
        out = gg if out_is == "g" else yy
        assert fastselu.selu_backward(gg, yy, is_result=True, out=out) is out
        assert same_floats(out, dy)


def test_selu_backward_promotion(backend):
    f16, f32, f64 = np.float16, np.float32, np.float64
    cases = [
        (f32, f64, f64),
        (f64, f32, f64),
        (f32, f32, f32),
        (f16, f16, f16),
        (f16, f32, f32),
        (np.int64, f32, f64),
        (np.int8, f16, f16),
        (np.int32, np.int32, f64),
        (np.bool_, np.bool_, f64),
        (">f4", "<f4", f32),
        (np.uint8, f64, f64),
    ]
    x0 = np.array([-1.5, 0.0, 2.0])
    for gdt, xdt, rdt in cases:
        g, x = np.array([1, 0, 1]).astype(gdt), x0.astype(xdt)
        r = fastselu.selu_backward(g, x)
        assert r.dtype == rdt, (gdt, xdt, r.dtype)
        want = fastselu.selu_backward(g.astype(rdt), x.astype(rdt))
        assert same_floats(r, want)


def test_selu_backward_scalars_and_lists(backend):
    r = fastselu.selu_backward(1.0, 0.0)
    assert type(r) is np.float64 and r == 1.7580993408473768
    r = fastselu.selu_backward(np.float32(2), np.float32(1))
    assert type(r) is np.float32 and r == np.float32(2 * fastselu.SCALE)
    assert fastselu.selu_backward([1, 1], [1, -1]).shape == (2,)
    assert fastselu.selu_backward(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


def test_selu_module_object(backend):
    m = fastselu.SELU()
    assert repr(m) == "SELU(inplace=False)" and m.inplace is False
    assert repr(fastselu.SELU(inplace=True)) == "SELU(inplace=True)"
    x = np.array([-1.0, 2.0])
    y = m(x)
    assert y is not x and same_floats(y, fastselu.selu(x))
    mi = fastselu.SELU(inplace=True)
    assert mi.inplace is True
    assert mi(x) is x and same_floats(x, y)
    assert type(fastselu.SELU()(1.0)) is np.float64


def test_switching_backend_changes_kernel():
    current = fastselu.get_backend()
    assert current in fastselu.available_backends()
    try:
        for name in fastselu.available_backends():
            fastselu.set_backend(name)
            assert fastselu.get_backend() == name
            assert fastselu.selu(np.float32(-1)) == np.float32(-1.1113307)
    finally:
        fastselu.set_backend(current)


def test_many_python_threads(backend):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(200_000).astype(np.float32) for _ in range(6)]
    want = [fastselu.selu(x) for x in xs]
    results = [None] * len(xs)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = fastselu.selu(xs[i])
                fastselu.selu_backward(xs[i], xs[i])
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(same_floats(r, w) for r, w in zip(results, want))
