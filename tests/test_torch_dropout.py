"""fastselu.torch AlphaDropout drop-ins: alpha_dropout, feature_alpha_dropout, the fused
selu_alpha_dropout, their modules and lecun_normal_ (issue 14 item 3, SPEC "Self-normalizing
companions", PyTorch paragraph)."""

import inspect
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastselu  # noqa: E402
import fastselu.torch as fst  # noqa: E402
from util import same_floats  # noqa: E402

F = torch.nn.functional
FLOATS = [torch.float32, torch.float64]
HALVES = [torch.float16, torch.bfloat16]
FUNCS = {
    "alpha_dropout": (fst.alpha_dropout, False, False),
    "feature_alpha_dropout": (fst.feature_alpha_dropout, True, False),
    "selu_alpha_dropout": (fst.selu_alpha_dropout, False, True),
    "selu_feature": (lambda *a, **k: fst.selu_alpha_dropout(*a, feature=True, **k), True, True),
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def expected_seed(torch_seed):
    """The seed a training call draws right after torch.manual_seed(torch_seed)."""
    torch.manual_seed(torch_seed)
    return int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64)) & (2**64 - 1)


def to_numpy(t):
    """A CPU tensor's values as an ndarray (bfloat16 as ml_dtypes')."""
    t = t.detach()
    if t.dtype is torch.bfloat16:
        return t.view(torch.int16).numpy().view(pytest.importorskip("ml_dtypes").bfloat16)
    return t.numpy()


def same_bits(a, b):
    """same_floats, and bit for bit for 16-bit arrays (bfloat16's NumPy dtype has no signbit)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.itemsize == 2:
        return a.dtype == b.dtype and np.array_equal(a.view(np.uint16), b.view(np.uint16))
    return same_floats(a, b)


def numpy_twin(x, p, seed, feature, fused):
    fn = fastselu.selu_alpha_dropout if fused else fastselu.alpha_dropout
    return np.asarray(fn(to_numpy(x), p, seed=seed, feature=feature))


# ---------------------------------------------------------------------------------------------
# Drop-in surface: signatures, defaults, reprs, errors.


def test_signatures_match_pytorch():
    for ours, theirs in (
        (fst.alpha_dropout, F.alpha_dropout),
        (fst.feature_alpha_dropout, F.feature_alpha_dropout),
    ):
        params = list(inspect.signature(ours).parameters.values())
        assert params[-1].name == "generator" and params[-1].kind == params[-1].KEYWORD_ONLY
        assert [(q.name, q.default) for q in params[:-1]] == [
            (q.name, q.default) for q in inspect.signature(theirs).parameters.values()
        ]
    sig = inspect.signature(fst.selu_alpha_dropout)
    assert [(q.name, q.default) for q in sig.parameters.values()] == [
        ("input", inspect.Parameter.empty),
        ("p", 0.5),
        ("training", False),
        ("inplace", False),
        ("feature", False),
        ("generator", None),
    ]
    assert [
        (q.name, q.default) for q in inspect.signature(fst.lecun_normal_).parameters.values()
    ] == [("tensor", inspect.Parameter.empty), ("generator", None)]


def test_module_reprs_and_state_dict():
    for ours, theirs in (
        (fst.AlphaDropout, torch.nn.AlphaDropout),
        (fst.FeatureAlphaDropout, torch.nn.FeatureAlphaDropout),
    ):
        for args in ((), (0.2,), (0.2, True)):
            assert repr(ours(*args)) == repr(theirs(*args))
        assert ours().state_dict() == {} and list(ours().parameters()) == []
        assert ours().p == 0.5 and ours().inplace is False
    assert repr(fst.SELUAlphaDropout()) == "SELUAlphaDropout(p=0.5, inplace=False, feature=False)"
    assert (
        repr(fst.SELUAlphaDropout(0.1, True, True))
        == "SELUAlphaDropout(p=0.1, inplace=True, feature=True)"
    )


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan if False else 2.0])
def test_bad_p_is_pytorchs_value_error(p):
    x = torch.randn(4, 3)
    with pytest.raises(ValueError) as theirs:
        F.alpha_dropout(x, p, True)
    for fn, _, _ in FUNCS.values():
        with pytest.raises(ValueError) as ours:
            fn(x, p, True)
        assert str(ours.value) == str(theirs.value)
    for cls in (fst.AlphaDropout, fst.FeatureAlphaDropout, fst.SELUAlphaDropout):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            cls(p)


@pytest.mark.parametrize("name", ["feature_alpha_dropout", "selu_feature"])
def test_feature_needs_two_dims_when_dropping(name):
    fn = FUNCS[name][0]
    with pytest.raises(RuntimeError) as theirs:
        F.feature_alpha_dropout(torch.randn(5), 0.5, True)
    x = torch.randn(5)
    before = x.clone()
    with pytest.raises(RuntimeError) as ours:
        fn(x, 0.5, True, True)
    assert str(ours.value) == str(theirs.value) and torch.equal(x, before)
    assert fn(x, 0.0, True) is x or name == "selu_feature"  # p = 0: no error (as PyTorch)
    fn(x, 1.0, True)  # p = 1: no error (as PyTorch)


# ---------------------------------------------------------------------------------------------
# Values.


@pytest.mark.parametrize("name", list(FUNCS))
def test_identity_when_not_training_or_p0(name):
    fn, _, fused = FUNCS[name]
    x = torch.randn(6, 5)
    for args in ((0.3, False), (0.0, True)):
        y = fn(x, *args)
        if fused:
            assert same_floats(y.numpy(), fst.selu(x).numpy())
        else:
            assert y is x  # the input object itself, as PyTorch


@pytest.mark.parametrize("name", list(FUNCS))
def test_p1_is_input_times_zero(name):
    fn, _, fused = FUNCS[name]
    x = torch.tensor([[1.0, -2.0, math.inf], [-math.inf, math.nan, -0.0]])
    v = fst.selu(x) if fused else x
    y, ref = fn(x, 1.0, True).numpy(), (v * 0).numpy()
    np.testing.assert_array_equal(y, ref)  # NaN where ref is NaN (fastselu's NaN is positive)
    assert (np.signbit(y) == np.signbit(ref))[~np.isnan(ref)].all()


@pytest.mark.parametrize("dtype", FLOATS + HALVES, ids=str)
@pytest.mark.parametrize("name", list(FUNCS))
def test_values_are_the_numpy_apis_with_the_drawn_seed(name, dtype):
    fn, feature, fused = FUNCS[name]
    x = torch.randn(64, 8, 3, generator=torch.Generator().manual_seed(1)).to(dtype) * 3
    seed = expected_seed(11)
    torch.manual_seed(11)
    y = fn(x, 0.3, True)
    assert y.dtype is dtype
    assert same_bits(to_numpy(y), numpy_twin(x, 0.3, seed, feature, fused))
    torch.manual_seed(11)
    assert same_bits(to_numpy(fn(x, 0.3, True)), to_numpy(y))  # manual_seed repeats it
    assert not same_bits(to_numpy(fn(x, 0.3, True)), to_numpy(y))  # the next call draws anew
    x2 = x.clone()
    torch.manual_seed(11)
    assert fn(x2, 0.3, True, True) is x2 and torch.equal(x2, y)  # in place


def test_generator_keyword():
    x = torch.randn(50, 20)
    gen = torch.Generator().manual_seed(5)
    state = torch.get_rng_state()
    a = fst.selu_alpha_dropout(x, 0.2, True, generator=gen)
    assert torch.equal(torch.get_rng_state(), state)  # the default generator is untouched
    gen.manual_seed(5)
    assert torch.equal(fst.selu_alpha_dropout(x, 0.2, True, generator=gen), a)


def test_keep_fraction_and_moments():
    x = torch.randn(400_000, dtype=torch.float64)
    torch.manual_seed(0)
    z = fst.selu_alpha_dropout(x, 0.1, True)
    dropped = (z == z.min()).double().mean().item()
    assert abs(dropped - 0.1) < 4 * math.sqrt(0.1 * 0.9 / x.numel())
    assert abs(z.mean().item()) < 0.01 and abs(z.var().item() - 1) < 0.02  # self-normalizing


@pytest.mark.parametrize("name", list(FUNCS))
def test_in_place_matches_out_of_place(name):
    fn, _, _ = FUNCS[name]
    x = torch.randn(30, 4, 2)
    torch.manual_seed(3)
    y = fn(x, 0.4, True)
    x2 = x.clone()
    version = x2._version
    torch.manual_seed(3)
    assert fn(x2, 0.4, True, True) is x2
    assert x2._version > version
    assert torch.equal(x2, y)


def test_module_train_and_eval():
    m = fst.SELUAlphaDropout(0.3)
    x = torch.randn(8, 6)
    assert same_floats(m.eval()(x).numpy(), fst.selu(x).numpy())  # SELU alone in eval mode
    torch.manual_seed(2)
    y = m.train()(x)
    torch.manual_seed(2)
    assert torch.equal(y, fst.selu_alpha_dropout(x, 0.3, True))
    d = fst.AlphaDropout(0.3).eval()
    assert d(x) is x


# ---------------------------------------------------------------------------------------------
# Autograd.


def _seeded(fn, *args, inplace=False, **kwargs):
    gen = torch.Generator()

    def f(t):
        gen.manual_seed(123)  # gradcheck calls f many times: the same mask each time
        if inplace:
            t = t * 1
        return fn(t, *args, inplace, generator=gen, **kwargs)

    return f


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("name", list(FUNCS))
def test_gradcheck_gradgradcheck(name, inplace):
    fn = FUNCS[name][0]
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 5, 2, dtype=torch.float64, generator=gen) * 2
    x = torch.where(x.abs() < 1e-2, x + 0.1, x).requires_grad_()
    f = _seeded(fn, 0.35, True, inplace=inplace)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("dtype", FLOATS + HALVES, ids=str)
def test_gradient_is_the_numpy_backward(dtype):
    x = (torch.randn(40, 7).to(dtype) * 2).requires_grad_()
    g = torch.randn(40, 7).to(dtype)
    seed = expected_seed(9)
    torch.manual_seed(9)
    fst.selu_alpha_dropout(x, 0.25, True).backward(g)
    ref = fastselu.selu_alpha_dropout_backward(to_numpy(g), to_numpy(x), 0.25, seed=seed)
    assert x.grad.dtype is dtype and same_bits(to_numpy(x.grad), np.asarray(ref))
    # in place: the backward from the result
    x.grad = None
    h = x * 1
    torch.manual_seed(9)
    z = fst.selu_alpha_dropout(h, 0.25, True, True)
    z.backward(g)
    ref = fastselu.selu_alpha_dropout_backward(
        to_numpy(g), to_numpy(z), 0.25, seed=seed, is_result=True
    )
    assert same_bits(to_numpy(x.grad), np.asarray(ref))
    # AlphaDropout alone
    x.grad = None
    torch.manual_seed(9)
    fst.alpha_dropout(x, 0.25, True).backward(g)
    ref = fastselu.alpha_dropout_backward(to_numpy(g), 0.25, seed=seed)
    assert same_bits(to_numpy(x.grad), np.asarray(ref))


def _saved_bytes(fn):
    """(tensors autograd saved, their total bytes) while running fn()."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return saved, sum(t.numel() * t.element_size() for t in saved), out


def test_saved_tensors_hold_at_most_x_and_a_seed():
    x = torch.randn(1000, 10, requires_grad=True)
    h = x * 1
    saved, nbytes, _ = _saved_bytes(lambda: fst.selu_alpha_dropout(h, 0.1, True))
    assert len(saved) == 1 and saved[0].data_ptr() == h.data_ptr()  # x itself, no mask
    saved, nbytes, out = _saved_bytes(lambda: fst.selu_alpha_dropout(h * 1, 0.1, True, True))
    assert len(saved) == 1 and saved[0].data_ptr() == out.data_ptr()  # in place: the result
    saved, nbytes, _ = _saved_bytes(lambda: fst.alpha_dropout(h, 0.1, True))
    assert saved == []  # AlphaDropout alone needs only the seed (kept by the autograd node)
    # PyTorch's pair saves SELU's result and the full-size noise: twice x's bytes.
    _, torch_bytes, _ = _saved_bytes(lambda: F.alpha_dropout(F.selu(h), 0.1, True))
    assert torch_bytes == 2 * h.numel() * h.element_size()


def test_mlp_trains_like_torchs_pair():
    """Same data, seeds and optimiser: the loss curves agree statistically (masks differ)."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(512, 16, generator=gen)
    target = (data[:, :4].sum(1, keepdim=True) * 0.5).tanh() + 0.05 * data[:, 4:5]

    def run(block, seed):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(16, 64),
            *block(),
            torch.nn.Linear(64, 64),
            *block(),
            torch.nn.Linear(64, 1),
        )
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(60):
            opt.zero_grad()
            loss = F.mse_loss(model(data), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        return np.array(losses), F.mse_loss(model(data), target).item()

    ours = [run(lambda: [fst.SELUAlphaDropout(0.1)], s) for s in range(3)]
    theirs = [run(lambda: [torch.nn.SELU(), torch.nn.AlphaDropout(0.1)], s) for s in range(3)]
    for runs in (ours, theirs):
        assert all(r[0][-10:].mean() < 0.5 * r[0][:3].mean() for r in runs)  # it trains
    tail_ours = np.array([r[0][-10:].mean() for r in ours])
    tail_theirs = np.array([r[0][-10:].mean() for r in theirs])
    spread = max(tail_ours.std(), tail_theirs.std(), 0.02 * tail_theirs.mean())
    assert abs(tail_ours.mean() - tail_theirs.mean()) < 4 * spread
    eval_ours, eval_theirs = np.mean([r[1] for r in ours]), np.mean([r[1] for r in theirs])
    assert abs(eval_ours - eval_theirs) < 0.25 * eval_theirs


# ---------------------------------------------------------------------------------------------
# Fallbacks and in-place rules.


class Sub(torch.Tensor):
    pass


@pytest.mark.parametrize("dtype", FLOATS + HALVES, ids=str)
def test_any_layout_gets_fastselus_mask(dtype):
    """A non-contiguous tensor (transposed, strided) gets the mask of its C-order indices, as
    the NumPy API and any layout do (SPEC): the contiguous call's values and gradients, in place
    too; PyTorch's ops only for other devices and dtypes, subclasses and torch.func."""
    base = torch.randn(8, 30).to(dtype)
    for view in (lambda b: b.t(), lambda b: b[:, ::3], lambda b: b.t()[::2]):
        assert not view(base).is_contiguous()
        for name, (fn, _, _) in FUNCS.items():
            torch.manual_seed(2)
            want = fn(view(base).contiguous(), 0.3, True)
            torch.manual_seed(2)
            assert torch.equal(fn(view(base), 0.3, True), want), name
            grads = []
            for how in ("contiguous copy", "as is", "in place"):
                leaf = base.clone().requires_grad_()
                x = view(leaf * 1 if how == "in place" else leaf)
                torch.manual_seed(2)
                if how == "contiguous copy":
                    y = fn(x.contiguous(), 0.3, True)
                elif how == "as is":
                    y = fn(x, 0.3, True)
                else:
                    assert fn(x, 0.3, True, True) is x
                    y = x
                assert torch.equal(y, want), (name, how)
                y.backward(torch.ones_like(want))
                grads.append(leaf.grad)
            assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2]), name


def test_subclasses_fall_back_to_pytorch():
    x = torch.randn(6, 20).t().as_subclass(Sub)
    torch.manual_seed(4)
    y = fst.alpha_dropout(x, 0.3, True)
    torch.manual_seed(4)
    assert torch.equal(y, F.alpha_dropout(x, 0.3, True))
    torch.manual_seed(4)
    z = fst.selu_alpha_dropout(x, 0.3, True)
    torch.manual_seed(4)
    assert torch.equal(z, F.alpha_dropout(F.selu(x), 0.3, True))


def test_fallback_with_a_generator_is_pytorchs_formula():
    x = torch.randn(6, 200, dtype=torch.float64).t().as_subclass(Sub)  # not contiguous either
    gen = torch.Generator().manual_seed(1)
    y = fst.alpha_dropout(x, 0.3, True, generator=gen)
    gen.manual_seed(1)
    assert torch.equal(y, fst.alpha_dropout(x, 0.3, True, generator=gen))
    torch.manual_seed(1)  # the same noise as PyTorch's own op on the default generator
    expected = F.alpha_dropout(x, 0.3, True)
    torch.manual_seed(1)
    assert torch.allclose(
        fst.alpha_dropout(x, 0.3, True, generator=torch.default_generator), expected, atol=2e-3
    )


@pytest.mark.parametrize("name", list(FUNCS))
def test_in_place_refusal_changes_nothing(name):
    fn = FUNCS[name][0]
    leaf = torch.randn(6, 4, requires_grad=True)
    before = leaf.detach().clone()
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError) as ours:
        fn(leaf, 0.3, True, True)
    with pytest.raises(RuntimeError) as theirs:
        F.selu(leaf, inplace=True)
    assert str(ours.value) == str(theirs.value)
    assert torch.equal(leaf.detach(), before) and leaf._version == 0
    assert torch.equal(torch.get_rng_state(), state)  # no seed drawn either
    with torch.no_grad():
        fn(leaf, 0.3, True, True)  # allowed under no_grad, as PyTorch
    assert not torch.equal(leaf.detach(), before)


def test_version_counter_catches_a_saved_input():
    w = torch.randn(5, 4, requires_grad=True)
    a = torch.randn(5, 4)
    y = a * w
    fst.selu_alpha_dropout(a, 0.2, True, True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---------------------------------------------------------------------------------------------
# lecun_normal_.


def test_lecun_normal_():
    w = torch.empty(256, 400)
    torch.manual_seed(0)
    assert fst.lecun_normal_(w) is w
    sigma = math.sqrt(1 / 400) / 0.87962566103423978
    assert w.abs().max().item() <= 2 * sigma * (1 + 1e-6)
    assert abs(w.std().item() - math.sqrt(1 / 400)) < 0.02 * math.sqrt(1 / 400)
    torch.manual_seed(0)
    assert torch.equal(fst.lecun_normal_(torch.empty(256, 400)), w)  # repeatable
    conv = torch.empty(8, 3, 5, 5)
    fst.lecun_normal_(conv, generator=torch.Generator().manual_seed(1))
    assert abs(conv.std().item() - math.sqrt(1 / 75)) < 0.15 * math.sqrt(1 / 75)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        fst.lecun_normal_(torch.empty(5))
    p = torch.nn.Parameter(torch.empty(4, 4))
    fst.lecun_normal_(p)  # a parameter that requires grad: filled under no_grad
    assert p.requires_grad and p.grad_fn is None


# ---------------------------------------------------------------------------------------------
# torch.compile (slow: Inductor compiles C++ on first use).


@pytest.mark.slow
@pytest.mark.parametrize("inplace", [False, True])
def test_torch_compile_matches_eager(inplace):
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 32), fst.SELUAlphaDropout(0.2, inplace), torch.nn.Linear(32, 1)
    )
    x = torch.randn(64, 8)
    with inductor_config.patch(fallback_random=True):
        compiled = torch.compile(model, fullgraph=True)
        torch.manual_seed(5)
        out = compiled(x)
        out.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(5)
    ref = model(x)
    ref.sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-6)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0


@pytest.mark.slow
@pytest.mark.parametrize("dtype", HALVES, ids=str)
@pytest.mark.parametrize("name", ["selu", "selu_alpha_dropout"])
def test_torch_compile_half_gradients_from_x(name, dtype):
    """A compiled graph saves what eager saves: out of place, float16/bfloat16 work from x, so
    the gradient stays within an ULP where y + SA cancels (from the 16-bit result it was up to
    ~60% off at x ~ -6); in place, from the result, as eager."""
    import torch._inductor.config as inductor_config

    sa = 1.0507009873554805 * 1.6732632423543772
    x = torch.linspace(-9, 2, 4001).to(dtype).requires_grad_()
    exact = torch.where(x.detach().double() > 0, 1.0507009873554805, sa * x.detach().double().exp())
    for inplace in (False, True):
        torch._dynamo.reset()
        with inductor_config.patch(fallback_random=True):
            model = fst.SELU(inplace) if name == "selu" else fst.SELUAlphaDropout(0.2, inplace)
            compiled = torch.compile(model, fullgraph=True)
            got = []
            for fn in (model, compiled):
                torch.manual_seed(5)
                y = fn(x * 1)
                y.backward(torch.ones_like(y))
                got.append((y.detach(), x.grad.clone()))
                x.grad = None
        (y_eager, g_eager), (y_comp, g_comp) = got
        assert torch.equal(y_eager, y_comp)
        if inplace:
            assert torch.equal(g_eager, g_comp)
            continue
        want = exact
        if name == "selu_alpha_dropout":
            assert torch.equal(g_eager, g_comp)
            want = exact * ((1 - 0.2) * (1 + 0.2 * sa * sa)) ** -0.5  # times a, where kept
        kept = g_comp != 0
        step = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}[dtype]
        ulp = step * 2.0 ** torch.floor(torch.log2(want[kept]))
        assert ((g_comp[kept].double() - want[kept]).abs() / ulp).max() <= 1.0


def _vm_flags(addr):
    """The VmFlags of this process's mapping that holds `addr` (Linux /proc/self/smaps)."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= addr < hi
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    return None


@pytest.mark.parametrize("name", ["selu", "selu_alpha_dropout"])
def test_large_new_outputs_ask_for_huge_pages(name):
    """Outputs of 4 MiB and more that fastselu.torch allocates (forward and backward) carry
    MADV_HUGEPAGE ('hg'): PyTorch's allocator does not ask, and 4 KiB page faults on a fresh
    40 MB tensor cost more than the kernel (Linux with transparent huge pages only)."""
    import os
    import sys

    if not sys.platform.startswith("linux") or not os.path.exists(
        "/sys/kernel/mm/transparent_hugepage/enabled"
    ):
        pytest.skip("transparent huge pages are Linux's")
    if fastselu.get_backend() != "cython":
        pytest.skip("the advice comes with the compiled backend")
    t = torch.randn(1 << 21).requires_grad_(True)  # 8 MiB
    fn = getattr(fst, name)
    y = fn(t) if name == "selu" else fn(t, 0.1, True)
    y.backward(torch.ones_like(y))
    for r in (y, t.grad):
        mid = r.data_ptr() + r.nbytes // 2  # inside the 2 MiB-aligned interior
        assert "hg" in (_vm_flags(mid) or []), name
