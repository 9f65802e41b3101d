"""fastselu.torch: the drop-in for torch.nn.SELU (outputs, autograd, in place, Module, compile)."""

import math
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastselu  # noqa: E402
import fastselu.torch as fst  # noqa: E402
from fastselu import _backends  # noqa: E402
from util import same_floats  # noqa: E402

FLOATS = [torch.float32, torch.float64]
# Agreement with PyTorch's own SELU: PyTorch is up to 2.5 ULP off, fastselu <= 1 ULP.
RTOL = {torch.float32: 4e-7, torch.float64: 8e-16}


def close(a, b, dtype):
    torch.testing.assert_close(a, b, rtol=RTOL[dtype] * 4, atol=1e-30, equal_nan=True)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """PyTorch's intra-op pool spins badly on a busy 2-core machine; its threads aren't tested."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Record the NumPy arrays that fastselu.torch hands to the kernels (to prove zero-copy).

    Spies on the backend's fast path, the first thing that `_api`'s functions call too, so a
    call is recorded once whichever way fastselu.torch reaches the kernels.
    """
    calls = []
    real_fwd, real_bwd = _backends.fast_forward, _backends.fast_backward

    def spy_fwd(x, out, inplace):
        calls.append(("selu", x, out, inplace))
        return real_fwd(x, out, inplace)

    def spy_bwd(g, x, is_result, out):
        calls.append(("selu_backward", g, x, out))
        return real_bwd(g, x, is_result, out)

    monkeypatch.setattr(_backends, "fast_forward", spy_fwd)
    monkeypatch.setattr(_backends, "fast_backward", spy_bwd)
    real_at = fst._selu_at
    if real_at is not None:  # the compiled kernels on the tensors' addresses (autograd path)

        def spy_at(kind, f64, a, b, o, n):
            if kind == 0:
                calls.append(("selu", _At(a), _At(o), False))
            else:
                calls.append(("selu_backward", _At(a), _At(b), _At(o)))
            return real_at(kind, f64, a, b, o, n)

        monkeypatch.setattr(fst, "_selu_at", spy_at)
    return calls


class _At:
    """An address that fastselu.torch passed to the kernels, read like ndarray.ctypes.data."""

    def __init__(self, addr):
        self.ctypes = types.SimpleNamespace(data=addr)


def special(dtype):
    vals = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1e-30,
        -1e-30,
        3.0,
        -3.0,
        -20.0,
        -800.0,
        88.0,
        1e38,
        math.inf,
        -math.inf,
        math.nan,
    ]
    return torch.tensor(vals, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Forward.


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7, 5), (3, 0, 2), (1 << 17) + 3])
def test_forward_matches_torch_and_numpy(dtype, shape):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=dtype, generator=gen) * 4
    before = x.clone()
    y = fst.selu(x)
    assert y.shape == x.shape and y.dtype == dtype and y.is_contiguous()
    assert y.data_ptr() != x.data_ptr() or x.numel() == 0
    assert torch.equal(x, before)  # input untouched
    close(y, torch.nn.functional.selu(x), dtype)
    assert same_floats(y.numpy(), np.asarray(fastselu.selu(x.numpy())))  # the kernels' own bits


@pytest.mark.parametrize("dtype", FLOATS)
def test_forward_special_values(dtype):
    x = special(dtype)
    y = fst.selu(x)
    ref = np.asarray(fastselu.selu(x.numpy()))
    assert same_floats(y.numpy(), ref)
    assert torch.isnan(y[-1]) and y[-3] == math.inf
    assert torch.signbit(y[1]) and not torch.signbit(y[0])
    close(y, torch.nn.functional.selu(x), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_copy_out_of_place(dtype, kernel_calls):
    x = torch.randn(1000, dtype=dtype)
    y = fst.selu(x)
    [(name, xa, outa, inplace)] = kernel_calls
    assert name == "selu" and not inplace
    assert xa.ctypes.data == x.data_ptr() and outa.ctypes.data == y.data_ptr()


@pytest.mark.parametrize("dtype", FLOATS)
def test_zero_copy_in_place(dtype, kernel_calls):
    x = torch.randn(1000, dtype=dtype)
    ptr, version = x.data_ptr(), x._version
    expected = torch.from_numpy(np.asarray(fastselu.selu(x.numpy())))
    kernel_calls.clear()
    r = fst.selu(x, inplace=True)
    assert r is x and x.data_ptr() == ptr
    assert x._version > version  # version counter bumped, as by torch.selu_
    assert torch.equal(x, expected)
    [(name, xa, outa, inplace)] = kernel_calls
    assert inplace and xa.ctypes.data == ptr
    assert fst.selu_(x) is x


def test_zero_copy_with_autograd(kernel_calls):
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)
    y = fst.selu(x)
    assert kernel_calls[-1][1].ctypes.data == x.data_ptr()
    assert kernel_calls[-1][2].ctypes.data == y.data_ptr()
    g = torch.randn(64, dtype=torch.float64)
    y.backward(g)
    name, ga, ya, outa = kernel_calls[-1]
    assert name == "selu_backward"
    assert ga.ctypes.data == g.data_ptr() and ya.ctypes.data == y.data_ptr()  # the saved result


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.randn(5, 6, dtype=torch.float16),
        lambda: torch.randn(5, 6, dtype=torch.bfloat16),
        lambda: torch.randn(6, 5, dtype=torch.float32).t(),  # not contiguous
        lambda: torch.randn(12, dtype=torch.float64)[::2],  # strided
        lambda: torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
    ],
    ids=["float16", "bfloat16", "transposed", "strided", "channels_last"],
)
@pytest.mark.parametrize("inplace", [False, True])
def test_fallback_is_torch(make, inplace, kernel_calls):
    x = make()
    expected = torch.nn.functional.selu(x.clone())
    y = fst.selu(x, inplace=inplace)
    assert (y is x) == inplace
    if x.dtype in (torch.float16, torch.bfloat16) and fst._HALF_KERNELS:
        # fastselu's own float16/bfloat16 kernels, zero-copy: correctly rounded, so equal to
        # PyTorch's (float32 then rounded once) or one rounding step away.
        assert kernel_calls and kernel_calls[0][1].ctypes.data == x.data_ptr()
        torch.testing.assert_close(y, expected)
        return
    assert not kernel_calls
    assert torch.equal(y, expected)


@pytest.mark.skipif(
    not fst._HALF_KERNELS,
    reason="this fastselu has no float16/bfloat16 kernels (PyTorch's SELU runs)",
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_on_the_kernels(dtype, kernel_calls):
    gen = torch.Generator().manual_seed(8)
    x = (torch.randn(3000, generator=gen) * 3).to(dtype)
    y = fst.selu(x)
    assert kernel_calls[0][1].ctypes.data == x.data_ptr()  # zero-copy, both ways
    assert kernel_calls[-1][2].ctypes.data == y.data_ptr()
    torch.testing.assert_close(y, torch.nn.functional.selu(x))
    if dtype == torch.float16:  # the NumPy API's own bits
        assert same_floats(y.numpy(), np.asarray(fastselu.selu(x.numpy())))
    x2 = x.clone()
    assert fst.selu_(x2) is x2 and torch.equal(x2, y)
    g = torch.randn(3000, generator=gen).to(dtype)
    grads = []
    for act in (fst.selu, torch.nn.functional.selu):
        xr = x.clone().requires_grad_()
        act(xr).backward(g)
        grads.append(xr.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_fallback_integer_raises_like_torch():
    x = torch.arange(4)
    with pytest.raises(RuntimeError) as ours:
        fst.selu(x)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.functional.selu(x)
    assert str(ours.value) == str(theirs.value)


def test_fastselu_rejects_tensors_pointing_here():
    with pytest.raises(TypeError, match="fastselu.torch"):
        fastselu.selu(torch.ones(3))


# ---------------------------------------------------------------------------------------------
# Autograd.


def _x64(n=40, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dtype=torch.float64, generator=gen) * 3
    x = torch.where(x.abs() < 1e-3, x + 0.1, x)  # keep away from the kink at 0
    return x.requires_grad_()


def test_gradcheck_gradgradcheck_out_of_place():
    x = _x64()
    assert torch.autograd.gradcheck(fst.selu, (x,))
    assert torch.autograd.gradgradcheck(fst.selu, (x,))


def test_gradcheck_gradgradcheck_in_place():
    x = _x64(seed=2)

    def f(t):
        return fst.selu(t * 1, inplace=True)  # in place on a non-leaf

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_gradcheck_in_place_on_a_view():
    w0 = _x64(8, seed=6)

    def f(w):
        h = w * 2
        out = fst.selu(h[2:5], inplace=True)  # a contiguous view of a non-leaf
        assert out._base is h
        return h * torch.arange(8.0, dtype=torch.float64)

    assert torch.autograd.gradcheck(f, (w0,))
    assert torch.autograd.gradgradcheck(f, (w0,))


def test_gradcheck_module_2d():
    x = _x64(60, seed=3).detach().reshape(6, 10).requires_grad_()
    m = fst.SELU()
    assert torch.autograd.gradcheck(m, (x,))
    assert torch.autograd.gradgradcheck(m, (x,))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("inplace", [False, True])
def test_gradients_match_torch(dtype, inplace):
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(3000, dtype=dtype, generator=gen) * 3
    g = torch.randn(3000, dtype=dtype, generator=gen)
    grads, outs = [], []
    for act in (fst.selu, torch.nn.functional.selu):
        x = x0.clone().requires_grad_()
        y = act(x * 1, inplace=inplace)
        y.backward(g)
        grads.append(x.grad)
        outs.append(y.detach())
    close(outs[0], outs[1], dtype)
    # Gradient from the result: PyTorch's own is 2.5 ULP off, and y + SCALE*ALPHA amplifies the
    # forward's error near y = -SCALE*ALPHA; a relative 1e-5 (float32) / 1e-13 (float64) is ample.
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(grads[0], grads[1], rtol=tol, atol=tol)


def test_second_derivative_matches_torch():
    x0 = _x64(50, seed=5).detach()
    results = []
    for act in (fst.selu, torch.nn.functional.selu):
        x = x0.clone().requires_grad_()
        (g,) = torch.autograd.grad(act(x).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), x)
        results.append((g.detach(), gg))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-13, atol=1e-13)


def test_derivative_at_nan_is_nan():
    x = torch.tensor([math.nan, 1.0, -1.0], requires_grad=True)
    fst.selu(x).sum().backward()
    assert torch.isnan(x.grad[0]) and x.grad[1] == fastselu.SCALE


def test_expanded_grad_output():
    x = torch.randn(5, 7, requires_grad=True)
    fst.selu(x).sum().backward()  # the incoming gradient is an expanded (stride 0) tensor
    x2 = x.detach().clone().requires_grad_()
    torch.nn.functional.selu(x2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_in_place_autograd_semantics():
    # A leaf that requires grad cannot be modified in place: PyTorch's error.
    leaf = torch.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        fst.selu(leaf, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        torch.nn.functional.selu(leaf, inplace=True)
    # Modifying a tensor saved for someone else's backward is detected through the version counter.
    w = torch.randn(4, requires_grad=True)
    a = torch.randn(4)
    y = a * w  # saves `a`
    fst.selu(a, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    # ... and our own saved result is protected the same way.
    h = w * 2
    out = fst.selu(h, inplace=True)
    assert out is h and h.grad_fn is not None
    out.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_no_grad_and_inference_mode():
    x = torch.randn(100, requires_grad=True)
    with torch.no_grad():
        y = fst.selu(x)
    assert not y.requires_grad
    close(y, torch.nn.functional.selu(x.detach()), torch.float32)
    # In place on a leaf that requires grad is allowed under no_grad (as optimizers do).
    expected = torch.nn.functional.selu(x.detach())
    bits = fst.selu(x.detach().clone())
    version = x._version
    with torch.no_grad():
        assert fst.selu(x, inplace=True) is x
    assert x._version > version and x.requires_grad
    assert torch.equal(x.detach(), bits)
    close(x.detach(), expected, torch.float32)
    with torch.inference_mode():
        t = torch.randn(100)
        close(fst.selu(t), torch.nn.functional.selu(t), torch.float32)
        assert fst.selu(t, inplace=True) is t
    # In-place on an inference tensor outside inference mode: PyTorch's own error.
    with pytest.raises(RuntimeError, match="[Ii]nference"):
        fst.selu(t, inplace=True)


def test_torch_func_and_forward_ad_fall_back():
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(fst.selu)(x), torch.nn.functional.selu(x))
    g = torch.func.grad(lambda t: fst.selu(t).sum())(x)
    torch.testing.assert_close(g, torch.func.grad(lambda t: torch.nn.functional.selu(t).sum())(x))
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        d = fwAD.make_dual(x, torch.ones_like(x))
        tangent = fwAD.unpack_dual(fst.selu(d)).tangent
        ref = fwAD.unpack_dual(torch.nn.functional.selu(d)).tangent
    torch.testing.assert_close(tangent, ref)


@pytest.mark.parametrize("dtype", FLOATS)
def test_opcheck_custom_ops(dtype):
    x = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.fastselu.selu.default, (x,))
    g = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    y = torch.randn(4, 5, dtype=dtype, requires_grad=True)
    torch.library.opcheck(torch.ops.fastselu.selu_backward.default, (g, y))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in 2.13
def test_make_fx_and_jit_trace_record_the_op():
    from torch.fx.experimental.proxy_tensor import make_fx

    gm = make_fx(lambda t: fst.selu(t))(torch.randn(3))
    assert "fastselu.selu" in gm.code
    traced = torch.jit.trace(fst.SELU(), torch.randn(3))
    assert "fastselu::selu" in str(traced.graph)
    x = torch.randn(8)
    close(traced(x), fst.selu(x), torch.float32)


# ---------------------------------------------------------------------------------------------
# nn.Module drop-in.


def test_module_repr_and_attributes():
    for inplace in (False, True):
        ours, theirs = fst.SELU(inplace), torch.nn.SELU(inplace)
        assert repr(ours) == repr(theirs)
        assert ours.inplace is inplace
        assert list(ours.parameters()) == [] and list(ours.buffers()) == []
        assert ours.state_dict() == theirs.state_dict() == {}
    assert repr(fst.SELU()) == "SELU()" and repr(fst.SELU(inplace=True)) == "SELU(inplace=True)"
    assert isinstance(fst.SELU(), torch.nn.Module)


def _mlp(act_cls, seed, dtype=torch.float64, inplace=False):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 32),
        act_cls(inplace=inplace),
        torch.nn.Linear(32, 32),
        act_cls(inplace=inplace),
        torch.nn.Linear(32, 1),
    ).to(dtype)


def test_state_dict_round_trip():
    theirs = _mlp(torch.nn.SELU, 0)
    ours = _mlp(fst.SELU, 1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(16, 8, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-13, atol=1e-13)
    back = _mlp(torch.nn.SELU, 2)
    back.load_state_dict(ours.state_dict(), strict=True)
    torch.testing.assert_close(back(x), theirs(x))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("inplace", [False, True])
def test_training_steps_same_losses(dtype, inplace):
    gen = torch.Generator().manual_seed(7)
    data = torch.randn(256, 8, dtype=dtype, generator=gen)
    target = (data[:, :1] * 2 - data[:, 1:2]).sin()
    losses = {}
    for name, act in (("ours", fst.SELU), ("torch", torch.nn.SELU)):
        model = _mlp(act, 0, dtype, inplace)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        seq = []
        for _ in range(15):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(data), target)
            loss.backward()
            opt.step()
            seq.append(loss.item())
        losses[name] = seq
    assert losses["ours"][-1] < losses["ours"][0]  # it trains
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(losses["ours"], losses["torch"], rtol=rtol)


# ---------------------------------------------------------------------------------------------
# torch.compile (slow: Inductor compiles C++ on first use).


@pytest.mark.slow
@pytest.mark.parametrize("inplace", [False, True])
def test_torch_compile_model_matches(inplace):
    torch._dynamo.reset()
    model = _mlp(fst.SELU, 0, torch.float32, inplace)
    ref = _mlp(torch.nn.SELU, 0, torch.float32, inplace)
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: the custom op, no graph break
    x = torch.randn(64, 8)
    out = compiled(x)
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)  # same kernels, same bits
    torch.testing.assert_close(out, ref(x), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    ref(x).sum().backward()
    for a, p in zip(grads, ref.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)
    # The graph holds fastselu's op.
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0
    assert "fastselu.selu" in "".join(g.code for g in explained.graphs) or "fastselu" in str(
        explained.graphs[0].graph
    )
