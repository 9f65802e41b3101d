"""fastselu.torch in place: PyTorch's refusals, raised before any data changes (issue 15 item 1).

Every refused case checks the data and the version counter, not only the error: the old code
wrote the result first and raised afterwards.
"""

import pytest

torch = pytest.importorskip("torch")

import fastselu.torch as fst  # noqa: E402

F = torch.nn.functional


VALUES = [-1.0, 0.5, 2.0, -3.0, 0.25, -0.5, 4.0, -2.0]


def _leaf(dtype=torch.float32):
    return torch.tensor(VALUES, dtype=dtype, requires_grad=True)


def _view_of_leaf(dtype=torch.float32):
    return _leaf(dtype)[1:3]


def _view_of_leaf_2d(dtype=torch.float32):
    return _leaf(dtype).view(2, 4)[1]


def _no_grad_view_of_leaf(dtype=torch.float32):
    a = _leaf(dtype)
    with torch.no_grad():
        return a[1:3]


def _no_grad_view_of_non_leaf(dtype=torch.float32):
    b = _leaf(dtype) * 2
    with torch.no_grad():
        return b[1:3]


def _multi_output_view(dtype=torch.float32):
    return (_leaf(dtype) * 2).unbind(0)[1]


def _split_view(dtype=torch.float32):
    return (_leaf(dtype) * 2).view(4, 2).split(2)[1]


def _inference_tensor(dtype=torch.float32):
    with torch.inference_mode():
        return torch.tensor(VALUES, dtype=dtype)


REFUSED = {
    "leaf": _leaf,
    "view_of_leaf": _view_of_leaf,
    "view_of_leaf_2d": _view_of_leaf_2d,
    "no_grad_view_of_leaf": _no_grad_view_of_leaf,
    "no_grad_view_of_non_leaf": _no_grad_view_of_non_leaf,
    "multi_output_view": _multi_output_view,
    "split_view": _split_view,
    "inference_tensor": _inference_tensor,
}

CALLS = {
    "selu": lambda t: fst.selu(t, inplace=True),
    "selu_": fst.selu_,
    "module": lambda t: fst.SELU(inplace=True)(t),
}


def _torch_error(make, dtype):
    with pytest.raises(RuntimeError) as info:
        F.selu(make(dtype), inplace=True)
    return str(info.value)


# float16 takes PyTorch's own SELU (the fallback): the same rule holds there.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_place_changes_nothing(case, call, dtype):
    make = REFUSED[case]
    t = make(dtype)
    before = t.detach().clone() if not t.is_inference() else t.clone()
    version = t._version if not t.is_inference() else None
    with pytest.raises(RuntimeError) as info:
        CALLS[call](t)
    assert str(info.value) == _torch_error(make, dtype)  # PyTorch's own error, word for word
    assert torch.equal(t.detach() if not t.is_inference() else t, before)  # data unchanged
    if version is not None:
        assert t._version == version  # nothing written, nothing bumped


def test_pytorch_itself_writes_an_inference_tensor_before_refusing():
    """The SPEC asks for stricter behaviour than torch.selu_ here: this documents the difference."""
    t = _inference_tensor()
    before = t.clone()
    with pytest.raises(RuntimeError):
        torch.selu_(t)
    assert not torch.equal(t, before)
    t = _inference_tensor()
    with pytest.raises(RuntimeError):
        fst.selu_(t)
    assert torch.equal(t, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "case", ["leaf", "view_of_leaf", "no_grad_view_of_leaf", "multi_output_view"]
)
def test_allowed_under_no_grad(case, dtype):
    t = REFUSED[case](dtype)
    expected = F.selu(t.detach().clone())
    version = t._version
    with torch.no_grad():
        assert fst.selu(t, inplace=True) is t
    assert t._version > version
    torch.testing.assert_close(t.detach(), expected, rtol=4e-6, atol=1e-7)


def test_allowed_under_inference_mode():
    t = _inference_tensor()
    normal = torch.tensor(VALUES)
    expected = F.selu(normal.clone())
    version = normal._version
    with torch.inference_mode():
        assert fst.selu_(t) is t
        assert fst.selu_(normal) is normal
    assert normal._version > version  # a normal tensor keeps its version counter
    torch.testing.assert_close(t, expected)
    torch.testing.assert_close(normal, expected)


def test_leaf_under_grad_mode_then_no_grad():
    """The issue's reproduction: refused with the data intact, then allowed under no_grad."""
    a = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        fst.selu(a, inplace=True)
    assert a.detach().tolist() == [-1.0, 0.5, 2.0]
    assert a.grad_fn is None and a.is_leaf
    with torch.no_grad():
        fst.selu(a, inplace=True)
    assert a.detach().tolist() != [-1.0, 0.5, 2.0]


@pytest.mark.parametrize("grad_mode", [True, False])
def test_version_bump_catches_a_saved_input(grad_mode):
    """An input saved by another op, then modified in place: backward raises, as PyTorch's does."""
    w = torch.randn(4, requires_grad=True)
    a = torch.randn(4)
    y = a * w  # saves `a`
    with torch.set_grad_enabled(grad_mode):
        fst.selu(a, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_version_bump_of_a_non_leaf_with_grad():
    w = torch.randn(4, requires_grad=True)
    h = w * 2
    z = h * h  # saves h
    version = h._version
    assert fst.selu(h, inplace=True) is h
    assert h._version == version + 1 and h.grad_fn is not None
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_allowed_in_place_on_views_with_grad():
    """Views of non-leaves made in grad mode are fine: data written, gradient flows to the base."""
    w = torch.tensor([-1.0, 0.5, 2.0, -3.0], dtype=torch.float64, requires_grad=True)
    h = w * 1
    v = h[1:3]
    assert fst.selu(v, inplace=True) is v
    torch.testing.assert_close(h.detach()[1:3], F.selu(w.detach()[1:3]))
    h.sum().backward()
    ref = w.detach().clone().requires_grad_()
    h2 = ref * 1
    F.selu(h2[1:3], inplace=True)
    h2.sum().backward()
    torch.testing.assert_close(w.grad, ref.grad)
