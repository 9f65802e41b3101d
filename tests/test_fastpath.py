"""The fast-path contract (fastselu/_backends.py), case by case, for every backend: the compiled
one (fast_forward/fast_backward in _kernels.pyx) and the Python twin (_fastpath.py) take exactly
the calls the contract names, and every call gives what the general path gives: the values, the
returned object, its type and dtype, what happens to the arguments, and the type and text of
any error."""

from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

import fastselu
from fastselu import _backends
from util import same_floats, switched_backend

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
    ml_dtypes = None

BACKENDS = fastselu.available_backends()
DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    pytest.param(
        ml_dtypes and ml_dtypes.bfloat16,
        marks=pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not installed"),
        id="bfloat16",
    ),
]


class Case(NamedTuple):
    label: str
    taken: bool  # what the contract says the fast path does with the call
    arrays: Callable[[], dict[str, Any]]  # fresh arguments for each run
    call: Callable[[dict[str, Any]], Any]


class Sub(np.ndarray):
    pass


def cases(dtype):
    rng = np.random.default_rng(0)
    x0 = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    g0 = rng.standard_normal((7, 5)).astype(dtype)
    other = np.float32 if np.dtype(dtype) == np.float16 else np.float16  # another kernel dtype

    # "o" starts as 7s: what a call leaves in it is compared too
    def xo(out=None):
        return lambda: {"x": x0.copy(), "o": np.full_like(x0, 7) if out is None else out()}

    def gxo():
        return {"g": g0.copy(), "x": x0.copy(), "o": np.full_like(x0, 7)}

    def read_only(a):
        a.flags.writeable = False
        return a

    def zero_d():
        return {"x": np.array(-1.5, dtype), "o": np.full((), 7, dtype), "g": np.array(2.0, dtype)}

    def empty():
        return {
            "x": np.empty((0, 3), dtype),
            "o": np.empty((0, 3), dtype),
            "g": np.empty((0, 3), dtype),
        }

    ambiguous = np.array([True, False])
    selu, backward = fastselu.selu, fastselu.selu_backward
    return [
        Case("new", True, xo(), lambda a: selu(a["x"])),
        Case("out", True, xo(), lambda a: selu(a["x"], out=a["o"])),
        Case("inplace", True, xo(), lambda a: selu(a["x"], inplace=True)),
        Case("out=x", True, xo(), lambda a: selu(a["x"], out=a["x"])),
        Case("out=view of x", True, xo(), lambda a: selu(a["x"], out=a["x"].view())),
        Case("empty", True, empty, lambda a: selu(a["x"])),
        Case("empty out", True, empty, lambda a: selu(a["x"], out=a["o"])),
        Case("empty inplace", True, empty, lambda a: selu(a["x"], inplace=True)),
        Case("0-d inplace", True, zero_d, lambda a: selu(a["x"], inplace=True)),
        Case("0-d out", True, zero_d, lambda a: selu(a["x"], out=a["o"])),
        Case("bwd", True, gxo, lambda a: backward(a["g"], a["x"])),
        Case("bwd y", True, gxo, lambda a: backward(a["g"], a["x"], is_result=True)),
        Case("bwd out", True, gxo, lambda a: backward(a["g"], a["x"], out=a["o"])),
        Case("bwd out=g", True, gxo, lambda a: backward(a["g"], a["x"], out=a["g"])),
        Case("bwd out=x", True, gxo, lambda a: backward(a["g"], a["x"], out=a["x"])),
        Case("bwd g is x", True, gxo, lambda a: backward(a["x"], a["x"], out=a["x"])),
        Case("bwd empty", True, empty, lambda a: backward(a["g"], a["x"])),
        Case("bwd 0-d out", True, zero_d, lambda a: backward(a["g"], a["x"], out=a["o"])),
        # declined: the general path's own cases, results and errors
        Case("0-d", False, zero_d, lambda a: selu(a["x"])),
        Case("NumPy scalar", False, zero_d, lambda a: selu(a["x"][()])),
        Case("bwd 0-d", False, zero_d, lambda a: backward(a["g"], a["x"])),
        Case("strided", False, xo(), lambda a: selu(a["x"][:, ::2])),
        Case("F order", False, xo(), lambda a: selu(a["x"].T)),
        Case("F order out", False, xo(), lambda a: selu(a["x"].T, out=a["o"].T)),
        Case(
            "byte-swapped", False, xo(), lambda a: selu(a["x"].astype(a["x"].dtype.newbyteorder()))
        ),
        Case("other kernel dtype", True, xo(), lambda a: selu(a["x"].astype(other))),
        Case("int", False, xo(), lambda a: selu(a["x"].astype(np.int64))),
        Case("list", False, xo(), lambda a: selu(a["x"].tolist())),
        Case("subclass", False, xo(), lambda a: selu(a["x"].view(Sub))),
        Case("subclass out", False, xo(), lambda a: selu(a["x"], out=a["o"].view(Sub))),
        Case("masked", False, xo(), lambda a: selu(np.ma.array(a["x"]))),
        Case("partial overlap", False, xo(), lambda a: selu(a["x"][1:], out=a["x"][:-1])),
        Case("out other dtype", False, xo(), lambda a: selu(a["x"], out=a["o"].astype(other))),
        Case("out other shape", False, xo(), lambda a: selu(a["x"], out=a["o"][:3])),
        Case(
            "read-only out",
            False,
            xo(lambda: read_only(x0.copy())),
            lambda a: selu(a["x"], out=a["o"]),
        ),
        Case("read-only inplace", False, xo(), lambda a: selu(read_only(a["x"]), inplace=True)),
        Case("inplace and out", False, xo(), lambda a: selu(a["x"], out=a["o"], inplace=True)),
        Case("ambiguous inplace", False, xo(), lambda a: selu(a["x"], inplace=ambiguous)),
        Case(
            "masked, ambiguous inplace",
            False,
            xo(),
            lambda a: selu(np.ma.array(a["x"]), inplace=ambiguous),
        ),
        Case("bwd mixed dtypes", False, gxo, lambda a: backward(a["g"].astype(other), a["x"])),
        Case("bwd shapes", False, gxo, lambda a: backward(a["g"], a["x"][:3])),
        Case(
            "bwd out overlaps g",
            False,
            gxo,
            lambda a: backward(a["g"][1:], a["x"][1:], out=a["g"][:-1]),
        ),
        Case(
            "bwd read-only out=x",
            False,
            gxo,
            lambda a: backward(a["g"], read_only(a["x"]), out=a["x"]),
        ),
        Case(
            "bwd ambiguous is_result",
            False,
            gxo,
            lambda a: backward(a["g"], a["x"], is_result=ambiguous),
        ),
    ]


def outcome(case):
    """Everything a caller can observe of one call, on fresh arguments."""
    args = case.arrays()
    try:
        r = case.call(args)
    except Exception as exc:  # noqa: BLE001 - the very same error either way is the point
        return ("raised", type(exc).__name__, str(exc)), args
    which = next((k for k, v in args.items() if r is v), "a new object")
    return ("returned", which, type(r).__name__, np.array(r, copy=True)), args


def same(a, b):
    if isinstance(a, np.ndarray):
        if a.dtype.itemsize == 2 and a.dtype.kind in "fV":  # float16, bfloat16: the very bits
            return a.dtype == b.dtype and np.array_equal(a.view(np.uint16), b.view(np.uint16))
        return same_floats(a, b) if a.dtype.kind == "f" else np.array_equal(a, b)
    return a == b


def recording(fast, taken):
    """`fast` that notes in `taken` whether it took each call (raising counts as declining)."""

    def wrapper(*args):
        try:
            res = fast(*args)
        except Exception:
            taken.append(False)
            raise
        taken.append(res is not NotImplemented)
        return res

    return wrapper


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BACKENDS)
def test_fast_path_keeps_the_contract(name, dtype, monkeypatch):
    with switched_backend(name):
        fast_forward, fast_backward = _backends.fast_forward, _backends.fast_backward
        for case in cases(dtype):
            taken = []
            with monkeypatch.context() as m:
                m.setattr(_backends, "fast_forward", recording(fast_forward, taken))
                m.setattr(_backends, "fast_backward", recording(fast_backward, taken))
                got, got_args = outcome(case)
            with monkeypatch.context() as m:
                m.setattr(_backends, "fast_forward", lambda *a: NotImplemented)
                m.setattr(_backends, "fast_backward", lambda *a: NotImplemented)
                want, want_args = outcome(case)
            assert taken == [case.taken], case.label
            assert len(got) == len(want) and all(map(same, got, want)), (case.label, got, want)
            for k in want_args:  # what the call did to its arguments
                assert same(got_args[k], want_args[k]), (case.label, k)


def dropout_cases(dtype):
    """The AlphaDropout functions' fast path (`_api._dropout_fast`): the contract above with a
    float p in (0, 1], an int seed in [0, 2**64) and training=True; anything else declined."""
    rng = np.random.default_rng(1)
    x0 = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    g0 = rng.standard_normal((7, 5)).astype(dtype)

    def arrays():
        return {"x": x0.copy(), "g": g0.copy(), "o": np.full_like(x0, 7)}

    def zero_d():
        return {"x": np.array(-1.5, dtype), "g": np.array(2.0, dtype), "o": np.full((), 7, dtype)}

    def read_only(a):
        a.flags.writeable = False
        return a

    f = fastselu.selu_alpha_dropout
    ad = fastselu.alpha_dropout
    b = fastselu.selu_alpha_dropout_backward
    adb = fastselu.alpha_dropout_backward
    return [
        Case("new", True, arrays, lambda a: f(a["x"], 0.3, seed=5)),
        Case("alpha new", True, arrays, lambda a: ad(a["x"], 0.3, seed=5)),
        Case("out", True, arrays, lambda a: f(a["x"], 0.3, seed=5, out=a["o"])),
        Case("out=x", True, arrays, lambda a: ad(a["x"], 0.3, seed=5, out=a["x"])),
        Case("inplace", True, arrays, lambda a: f(a["x"], 0.3, seed=5, inplace=True)),
        Case("p=1", True, arrays, lambda a: ad(a["x"], 1.0, seed=5)),
        Case("top seed", True, arrays, lambda a: f(a["x"], 0.3, seed=2**64 - 1)),
        Case("feature", True, arrays, lambda a: f(a["x"], 0.3, seed=5, feature=True)),
        Case("feature 1-D p=1", True, arrays, lambda a: ad(a["x"][0], 1.0, seed=5, feature=True)),
        Case("0-d out", True, zero_d, lambda a: f(a["x"], 0.3, seed=5, out=a["o"])),
        Case("0-d inplace", True, zero_d, lambda a: f(a["x"], 0.3, seed=5, inplace=True)),
        Case(
            "empty", True, lambda: {"x": np.empty((0, 2), dtype)}, lambda a: f(a["x"], 0.3, seed=5)
        ),
        Case("bwd", True, arrays, lambda a: b(a["g"], a["x"], 0.3, seed=5)),
        Case("bwd result", True, arrays, lambda a: b(a["g"], a["x"], 0.3, seed=5, is_result=True)),
        Case("bwd out=g", True, arrays, lambda a: b(a["g"], a["x"], 0.3, seed=5, out=a["g"])),
        Case("alpha bwd", True, arrays, lambda a: adb(a["g"], 0.3, seed=5)),
        Case("alpha bwd out=g", True, arrays, lambda a: adb(a["g"], 0.3, seed=5, out=a["g"])),
        # declined: the general path's own cases, results and errors
        Case("0-d", False, zero_d, lambda a: f(a["x"], 0.3, seed=5)),
        Case("p=0", False, arrays, lambda a: f(a["x"], 0.0, seed=5)),
        Case("int p", False, arrays, lambda a: ad(a["x"], 1, seed=5)),
        Case("NumPy p", False, arrays, lambda a: f(a["x"], np.float64(0.3), seed=5)),
        Case("NaN p", False, arrays, lambda a: f(a["x"], float("nan"), seed=5)),
        Case("p > 1", False, arrays, lambda a: f(a["x"], 1.5, seed=5)),
        Case("NumPy seed", False, arrays, lambda a: f(a["x"], 0.3, seed=np.uint64(5))),
        Case("bool seed", False, arrays, lambda a: f(a["x"], 0.3, seed=True)),
        Case("negative seed", False, arrays, lambda a: f(a["x"], 0.3, seed=-1)),
        Case("huge seed", False, arrays, lambda a: f(a["x"], 0.3, seed=2**64)),
        Case(
            "Generator seed",
            False,
            arrays,
            lambda a: f(a["x"], 0.3, seed=np.random.default_rng(2)),
        ),
        Case("not training", False, arrays, lambda a: f(a["x"], 0.3, seed=5, training=False)),
        Case("NumPy bool", False, arrays, lambda a: f(a["x"], 0.3, seed=5, training=np.True_)),
        Case(
            "ambiguous inplace",
            False,
            arrays,
            lambda a: f(a["x"], 0.3, seed=5, inplace=np.array([True, False])),
        ),
        Case("feature 1-D", False, arrays, lambda a: f(a["x"][0], 0.3, seed=5, feature=True)),
        Case("strided", False, arrays, lambda a: f(a["x"][:, ::2], 0.3, seed=5)),
        Case("F order", False, arrays, lambda a: f(a["x"].T, 0.3, seed=5)),
        Case("list", False, arrays, lambda a: f(a["x"].tolist(), 0.3, seed=5)),
        Case("subclass", False, arrays, lambda a: f(a["x"].view(Sub), 0.3, seed=5)),
        Case(
            "partial overlap",
            False,
            arrays,
            lambda a: f(a["x"][1:], 0.3, seed=5, out=a["x"][:-1]),
        ),
        Case(
            "read-only out",
            False,
            arrays,
            lambda a: f(a["x"], 0.3, seed=5, out=read_only(a["o"])),
        ),
        Case(
            "read-only inplace",
            False,
            arrays,
            lambda a: f(read_only(a["x"]), 0.3, seed=5, inplace=True),
        ),
        Case(
            "inplace and out",
            False,
            arrays,
            lambda a: f(a["x"], 0.3, seed=5, out=a["o"], inplace=True),
        ),
        Case("bwd shapes", False, arrays, lambda a: b(a["g"], a["x"][:3], 0.3, seed=5)),
        Case(
            "bwd mixed dtypes",
            False,
            arrays,
            lambda a: b(a["g"].astype(np.float64), a["x"].astype(np.float32), 0.3, seed=5),
        ),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BACKENDS)
def test_dropout_fast_path_keeps_the_contract(name, dtype, monkeypatch):
    from fastselu import _api

    with switched_backend(name):
        for case in dropout_cases(dtype):
            taken = []
            with monkeypatch.context() as m:
                m.setattr(_api, "_dropout_fast", recording(_api._dropout_fast, taken))
                got, got_args = outcome(case)
            with monkeypatch.context() as m:
                m.setattr(_api, "_dropout_fast", lambda *a: NotImplemented)
                want, want_args = outcome(case)
            assert taken[:1] == [case.taken], case.label
            assert len(got) == len(want) and all(map(same, got, want)), (case.label, got, want)
            assert got_args.keys() == want_args.keys()
            for k in got_args:
                assert same(got_args[k], want_args[k]), (case.label, k)
