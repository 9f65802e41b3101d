"""PyTorch drop-ins for ``torch.nn.SELU``, ``AlphaDropout`` and friends, on fastselu's kernels.

    import fastselu.torch as fst
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), fst.SELU(), torch.nn.Linear(64, 1))

What runs where:

* CPU float32/float64 contiguous tensors run fastselu's kernels, zero-copy: the kernels read and
  write the tensors' own memory through ``Tensor.numpy()`` views.  An out-of-place call allocates
  only the result; an in-place call allocates nothing.
* Everything else falls back to PyTorch's own ``torch.nn.functional.selu``, so any tensor works:
  other devices, float16/bfloat16/other dtypes, non-contiguous tensors, tensor subclasses, and
  calls under forward-mode AD or a ``torch.func`` transform (``vmap``, ``grad``, ``jacrev``...).
* Autograd, eager: `_Eager` / `_EagerInplace`, ``torch.autograd.Function``s over the kernels
  (one pattern for SELU and the AlphaDropout ops, described by a `_Kernels` object).  SELU's
  backward works from the saved *result* (SELU'(x) = SCALE for y > 0, y + SCALE*ALPHA otherwise);
  with ``create_graph=True`` the backward is a custom op that is itself differentiable, so
  ``gradgradcheck`` works.  In place marks the tensor dirty (the version counter is bumped, as by
  ``torch.selu_``), after PyTorch's refusals have been checked without writing (`_check_inplace`).
* Graph capture (``torch.compile``, ``make_fx``, ``torch.jit.trace``): the ``torch.library`` custom
  ops ``fastselu::selu`` / ``selu_backward`` / ``alpha_dropout`` / ``alpha_dropout_backward``,
  with fake implementations; in place is written as the op followed by ``copy_``
  (functionalization turns it back into an in-place update).
* Without autograd (``torch.no_grad()``, inference mode, tensors that do not require grad) an eager
  call goes straight to the kernels (about 2 µs of overhead per call).
* AlphaDropout, FeatureAlphaDropout, the fused SELUAlphaDropout and lecun_normal_: see their
  section below.

Numbers: fastselu's results are within 1 ULP of the exact SELU; PyTorch's own are up to 1.6
(float32) / 2.4 (float64) ULP off, so results agree with ``torch.nn.SELU`` to a few ULPs, not bit
for bit.  The derivative at NaN is NaN (PyTorch's is SCALE).  The kernels use fastselu's thread
setting (``fastselu.set_num_threads``), not ``torch.set_num_threads``.

This module imports torch (the absolute ``import torch`` below is the real PyTorch, not this file);
``import fastselu`` alone never does.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, cast

import numpy as np
import torch
import torch.nn.functional as _F

from . import _api, _backends, _config, _dropout
from ._constants import SCALE, SCALE_ALPHA_F64

__all__ = [
    "SELU",
    "selu",
    "selu_",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "SELUAlphaDropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "selu_alpha_dropout",
    "lecun_normal_",
]

# float16/bfloat16 run on the kernels once fastselu has native kernels for them (its private
# `_api.half_call` takes bfloat16 bits, which NumPy has no dtype for); until then, PyTorch's ops.
_half_call: Callable[..., np.ndarray] = getattr(_api, "half_call", None)  # type: ignore[assignment]
_HALF_KERNELS = _half_call is not None
_FAST_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64) + (
    (torch.float16, torch.bfloat16) if _HALF_KERNELS else ()
)
_DROPOUT_DTYPES = _FAST_DTYPES
_HALF_DTYPES = (torch.float16, torch.bfloat16)
# _kernels.dropout_at's dtype codes, and the format names of _dropout.params
_AT_CODE = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
_FORMAT = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
_BF16 = torch.bfloat16
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
# Private hooks, looked up defensively: if one is missing, assume the machinery is active (safe).
_functorch_active: Callable[[], bool] = getattr(
    torch._C, "_are_functorch_transforms_active", lambda: True
)
_dispatch_stack_len: Callable[[], int] = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 1)
_is_tracing: Callable[[], bool] = torch.jit.is_tracing  # type: ignore[attr-defined]
_c_is_tracing: Callable[[], bool] = getattr(torch._C, "_is_tracing", _is_tracing)
_forward_ad = torch.autograd.forward_ad


def _fast_ok(
    t: torch.Tensor, dtypes: tuple[torch.dtype, ...] = _FAST_DTYPES, any_layout: bool = False
) -> bool:
    """True if the kernels can work on `t`'s memory directly: CPU, `dtypes`, C-contiguous (or
    any strided layout, for a caller that makes a contiguous copy)."""
    return (
        t.is_cpu
        and t.dtype in dtypes
        and t.layout == torch.strided
        and (any_layout or t.is_contiguous())
    )


def _nd(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy); bfloat16 as its int16 bits.

    ``numpy(force=True)`` detaches in C: a view for CPU tensors without the negative bit (eager
    calls check it in `_eager_fast`; the custom ops get resolved tensors from graph capture)."""
    if t.dtype is _BF16:
        return t.detach().view(torch.int16).numpy()
    return t.numpy(force=True)


def _advise_none(address: int, nbytes: int) -> None:
    return None


def _compiled() -> Any:
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError:  # no compiled backend
        return None
    return _kernels


_KERNELS = _compiled()
_advise_hugepages: Callable[[int, int], None] = getattr(
    _KERNELS, "advise_hugepages", _advise_none
)  # without the compiled backend: small pages it is
_selu_at: Optional[Callable[..., None]] = getattr(_KERNELS, "selu_at", None)
_dropout_at: Optional[Callable[..., None]] = getattr(_KERNELS, "dropout_at", None)


def _empty_like(t: torch.Tensor) -> torch.Tensor:
    """A new contiguous tensor like `t` for a kernel to fill.  A large one asks for transparent
    huge pages first (`_kernels.advise_hugepages`): PyTorch's CPU allocator does not, and
    faulting 40 MB in 4 KiB pages costs more than the kernel that writes it."""
    out = torch.empty_like(t, memory_format=torch.contiguous_format)
    _advise_hugepages(out.data_ptr(), out.nbytes)
    return out


def _graph_capture() -> bool:
    """torch.compile/export, torch.jit.trace or a dispatch mode (make_fx, FakeTensorMode) is on."""
    return torch.compiler.is_compiling() or _is_tracing() or _dispatch_stack_len() > 0


def _torch_only() -> bool:
    """Forward-mode AD or a torch.func transform is active: only PyTorch's SELU supports them."""
    return _forward_ad._current_level >= 0 or _functorch_active()


# --------------------------------------------------------------------------------------------
# Custom ops (the out-of-place forward and the backward from the result).


@torch.library.custom_op("fastselu::selu", mutates_args=())
def _selu_op(x: torch.Tensor, save_input: bool = False) -> torch.Tensor:
    """SELU(x) as a new contiguous tensor (fastselu's kernels on CPU float32/float64); its
    gradient works from the result, or from x if `save_input` (see _selu_setup_context)."""
    if x.dtype in _FAST_DTYPES and x.device.type == "cpu" and x.layout == torch.strided:
        xc = x.contiguous()
        out = _empty_like(x)
        _SELU.forward(_nd(xc), _nd(out))
        return out
    return _F.selu(x).contiguous()


@_selu_op.register_fake
def _selu_fake(x: torch.Tensor, save_input: bool = False) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("fastselu::selu_backward", mutates_args=())
def _selu_backward_op(grad: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """grad * SELU'(x) from the forward result: SCALE where result > 0, else result + SA."""
    if (
        grad.dtype == result.dtype
        and result.dtype in _FAST_DTYPES
        and grad.device.type == "cpu"
        and result.device.type == "cpu"
        and grad.layout == torch.strided
        and result.layout == torch.strided
        and grad.shape == result.shape
    ):
        out = _empty_like(result)
        _SELU.backward(_nd(grad.contiguous()), _nd(result.contiguous()), _nd(out))
        return out
    deriv = torch.where(result > 0, SCALE, result + SCALE_ALPHA_F64)
    return (grad * deriv).contiguous()


@_selu_backward_op.register_fake
def _selu_backward_fake(grad: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    shape = torch.broadcast_shapes(grad.shape, result.shape)  # type: ignore[no-untyped-call]
    dtype = torch.promote_types(grad.dtype, result.dtype)
    return torch.empty(shape, dtype=dtype, device=result.device)


def _selu_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, ctx.from_x = inputs
    ctx.save_for_backward(x if ctx.from_x else output)


def _selu_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
    (saved,) = ctx.saved_tensors
    if ctx.from_x:
        return _SELU_FROM_INPUT.backward_op(grad, saved), None
    return cast(torch.Tensor, _selu_backward_op(grad, saved)), None


_selu_op.register_autograd(_selu_backward, setup_context=_selu_setup_context)


def _selu_backward_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    grad, result = inputs
    ctx.save_for_backward(grad, result)


def _selu_backward_backward(
    ctx: Any, gg: torch.Tensor
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    grad, result = ctx.saved_tensors
    # d/dgrad (grad * f(result)) = f(result); d/dresult = grad * f'(result), f' = 0 (y > 0) or 1.
    d_grad = _selu_backward_op(gg, result) if ctx.needs_input_grad[0] else None
    d_result = gg * grad * (result <= 0) if ctx.needs_input_grad[1] else None
    return d_grad, d_result


_selu_backward_op.register_autograd(
    _selu_backward_backward, setup_context=_selu_backward_setup_context
)


# --------------------------------------------------------------------------------------------
# In place.

_DEFAULT_VIEW = torch._C._autograd.CreationMeta.DEFAULT


def _inference_error() -> RuntimeError:
    """PyTorch's own error for an in-place update of an inference tensor outside inference mode."""
    with torch.inference_mode():
        dummy = torch.empty(0)
    try:
        torch.selu_(dummy)  # no elements, so nothing is written
    except RuntimeError as exc:
        return exc
    return RuntimeError("Inplace update to inference tensor outside InferenceMode is not allowed.")


def _raise_torch_refusal(t: torch.Tensor) -> None:
    """Raise the error that PyTorch's in-place ops raise for `t`, writing nothing.

    ``copy_`` runs autograd's in-place checks (leaf, view of a leaf, views made under no_grad or by
    a multi-output op) before its kernel, and the kernel refuses a source on the meta device (no
    data) with NotImplementedError: so a RuntimeError here is PyTorch's refusal, and
    NotImplementedError means PyTorch would allow the update after all.
    """
    try:
        t.copy_(torch.empty(t.shape, dtype=t.dtype, device="meta"))
    except NotImplementedError:
        return


def _check_inplace(t: torch.Tensor) -> None:
    """Raise PyTorch's error, before any data changes, where PyTorch refuses to modify `t` in place.

    The rules of autograd's check_inplace, in its order: an inference tensor outside inference
    mode; then, with grad mode on and `t` requiring grad, a view made under no_grad or by a
    multi-output op, a view of a leaf, a leaf.  The cheap tests here only decide *whether* PyTorch
    refuses; the error itself is PyTorch's own (see `_raise_torch_refusal`).
    """
    if t.is_inference() and not torch.is_inference_mode_enabled():
        raise _inference_error()
    if not (t.requires_grad and torch.is_grad_enabled()):
        return
    if t._is_view():
        try:
            plain_view = torch._C._autograd._get_creation_meta(t) == _DEFAULT_VIEW
        except RuntimeError:  # not a differentiable view: let PyTorch judge
            plain_view = False
        refused = not plain_view or cast(torch.Tensor, t._base).is_leaf
    else:
        refused = t.is_leaf
    if refused:
        _raise_torch_refusal(t)


# --------------------------------------------------------------------------------------------
# Eager autograd: one autograd.Function pattern for every elementwise op of this module.
#
# A custom op costs a trip through the dispatcher and torch.library's autograd wrapper on every
# call (a training step of SELU on 64x256 float32 took ~2x torch.nn.SELU's).  In eager mode the
# ops run instead as the autograd.Functions below, whose forward and backward call the kernels on
# `.numpy()` views of the tensors' memory (the compiled backend's fast path: no conversion, one
# allocation per direction).  The custom ops remain for graph capture and for double backward.


class _Kernels:
    """An elementwise op for the eager Functions: its kernels on NumPy views, and its backward as
    a differentiable custom op (for create_graph=True).

    ``forward(x, out)`` writes the op of `x` into `out` (ndarrays of one shape and dtype), or
    into `x` itself when `out` is None; ``backward(grad, saved, out)`` writes the gradient given
    what the forward saved: the result if ``saves_result``, the input if ``saves_input``, else
    None (in place, the tensor saved is the result).  ``backward_op(grad, saved)`` is the same as
    a differentiable custom op.  Parameters such as p and a seed live on the instance.
    """

    saves_result = True  # what the out-of-place forward saves: the result, the input, or neither
    saves_input = False

    def forward(self, x: np.ndarray, out: Optional[np.ndarray]) -> None:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, saved: Optional[np.ndarray], out: np.ndarray) -> None:
        raise NotImplementedError

    def backward_op(self, grad: torch.Tensor, saved: Optional[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward_t(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """`forward` on tensors (`_eager_fast` ones, `out` new and like `x`)."""
        self.forward(_nd(x), _nd(out))

    def backward_t(
        self, grad: torch.Tensor, saved: Optional[torch.Tensor], out: torch.Tensor
    ) -> None:
        """`backward` on tensors (contiguous, `out` new and like `grad`)."""
        self.backward(_nd(grad), None if saved is None else _nd(saved), _nd(out))

    def grad_input(self, grad: torch.Tensor, saved: Optional[torch.Tensor]) -> torch.Tensor:
        """The gradient w.r.t. the input: kernels when plain, the differentiable op otherwise."""
        if torch.is_grad_enabled():  # create_graph=True: the backward must itself be recorded
            return self.backward_op(grad, saved)
        if not grad.is_contiguous():
            grad = grad.contiguous()  # e.g. the expanded gradient of a sum()
        out = _empty_like(grad)
        self.backward_t(grad, saved, out)
        return out


class _SeluKernels(_Kernels):
    # The compiled fast path first (what `_api` itself tries first), `_api` for anything else;
    # int16 arrays are bfloat16 bits (`_nd`), for the half-precision kernels' entry point.
    def forward(self, x: np.ndarray, out: Optional[np.ndarray]) -> None:
        if _backends.fast_forward(x, out, out is None) is NotImplemented:
            if x.dtype == np.int16:
                _half_call("forward", "bfloat16", x, out=x if out is None else out)
            else:
                _api.selu(x, out=out, inplace=out is None)

    def backward(self, grad: np.ndarray, saved: Optional[np.ndarray], out: np.ndarray) -> None:
        assert saved is not None  # SELU always saves its result
        if _backends.fast_backward(grad, saved, True, out) is NotImplemented:
            if grad.dtype == np.int16:
                _half_call("backward_y", "bfloat16", grad, saved, out=out)
            else:
                _api.selu_backward(grad, saved, is_result=True, out=out)

    def backward_op(self, grad: torch.Tensor, saved: Optional[torch.Tensor]) -> torch.Tensor:
        return cast(torch.Tensor, _selu_backward_op(grad, saved))

    # float32/float64 with the compiled backend active: the kernels on the tensors' addresses.
    def forward_t(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if _selu_at is not None and x.dtype in _FULL_DTYPES and _backends.active is _KERNELS:
            _selu_at(0, x.dtype is torch.float64, x.data_ptr(), 0, out.data_ptr(), x.numel())
        else:
            self.forward(_nd(x), _nd(out))

    def backward_t(
        self, grad: torch.Tensor, saved: Optional[torch.Tensor], out: torch.Tensor
    ) -> None:
        if (
            _selu_at is not None
            and saved is not None
            and grad.dtype in _FULL_DTYPES
            and saved.dtype is grad.dtype
            and saved.shape == grad.shape
            and _backends.active is _KERNELS
        ):
            f64 = grad.dtype is torch.float64
            _selu_at(2, f64, grad.data_ptr(), saved.data_ptr(), out.data_ptr(), grad.numel())
        else:
            self.backward(_nd(grad), None if saved is None else _nd(saved), _nd(out))


class _SeluFromInputKernels(_SeluKernels):
    """SELU saving its input: float16/bfloat16, out of place.  The gradient from a result rounded
    to 11 (8) bits is up to ~1e-2 off where y + SCALE*ALPHA cancels; from x it stays within an
    ULP, as PyTorch's (whose out-of-place SELU saves x too)."""

    saves_result, saves_input = False, True

    def backward_t(
        self, grad: torch.Tensor, saved: Optional[torch.Tensor], out: torch.Tensor
    ) -> None:
        self.backward(_nd(grad), None if saved is None else _nd(saved), _nd(out))

    def backward(self, grad: np.ndarray, saved: Optional[np.ndarray], out: np.ndarray) -> None:
        assert saved is not None
        if grad.dtype == np.int16:
            _half_call("backward_x", "bfloat16", grad, saved, out=out)
        else:
            _api.selu_backward(grad, saved, out=out)

    def backward_op(self, grad: torch.Tensor, saved: Optional[torch.Tensor]) -> torch.Tensor:
        assert saved is not None  # create_graph=True: PyTorch's ops, differentiable as they are
        return grad * torch.where(saved > 0, SCALE, SCALE_ALPHA_F64 * saved.exp())


_SELU = _SeluKernels()
_SELU_FROM_INPUT = _SeluFromInputKernels()
_FULL_DTYPES = (torch.float32, torch.float64)


class _Eager(torch.autograd.Function):
    """Out of place: a new tensor from the kernels; saves the result, the input, or neither."""

    @staticmethod
    def forward(ctx: Any, kernels: _Kernels, x: torch.Tensor) -> torch.Tensor:
        out = _empty_like(x)
        kernels.forward_t(x, out)
        ctx.kernels = kernels
        if kernels.saves_result:
            ctx.save_for_backward(out)
        elif kernels.saves_input:
            ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        saved = ctx.saved_tensors
        return None, ctx.kernels.grad_input(grad, saved[0] if saved else None)


class _EagerInplace(torch.autograd.Function):
    """In place: marks `x` dirty and saves it (it will hold the result) for the backward.

    The caller writes the data *after* ``apply`` returns: autograd's own in-place checks run in
    ``apply`` after ``forward``, so a refusal that `_check_inplace` did not foresee still leaves
    the tensor unchanged.  ``save_for_backward`` records x's version after the bump that
    ``mark_dirty`` causes, and the write itself does not bump it again.
    """

    @staticmethod
    def forward(ctx: Any, kernels: _Kernels, x: torch.Tensor) -> torch.Tensor:
        ctx.mark_dirty(x)  # bumps x's version counter
        ctx.kernels = kernels
        if kernels.saves_result or kernels.saves_input:  # in place, the kernels work from it
            ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        saved = ctx.saved_tensors
        return None, ctx.kernels.grad_input(grad, saved[0] if saved else None)


def _c_apply(fn: type[torch.autograd.Function]) -> Callable[..., Any]:
    """``fn.apply`` without its Python wrapper (which binds defaults and unwraps functorch's dead
    wrappers: ~7 µs of a ~25 µs call); the callers rule out functorch tensors first."""
    raw = getattr(torch._C, "_FunctionBase", None)
    raw_apply = raw.__dict__.get("apply") if raw is not None else None
    if raw_apply is None or not hasattr(raw_apply, "__get__"):
        return fn.apply
    return cast(Callable[..., Any], raw_apply.__get__(None, fn))


_eager_apply = _c_apply(_Eager)
_eager_inplace_apply = _c_apply(_EagerInplace)
_is_functorch_tensor: Callable[[torch.Tensor], bool] = getattr(
    torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: True
)


def _run(kernels: _Kernels, input: torch.Tensor, inplace: bool) -> torch.Tensor:
    """An eager call on a plain CPU tensor that the kernels take (`_fast_ok`), checks done."""
    if input.requires_grad and torch.is_grad_enabled():
        if inplace:
            _eager_inplace_apply(kernels, input)
            kernels.forward(_nd(input), None)  # after apply: see _EagerInplace
            return input
        return cast(torch.Tensor, _eager_apply(kernels, input))
    # Without autograd: the kernels directly.
    xn = _nd(input)
    if inplace:
        kernels.forward(xn, None)
        torch.autograd.graph.increment_version(input)  # as every PyTorch in-place op does
        return input
    out = _empty_like(input)
    kernels.forward(xn, _nd(out))
    return out


# --------------------------------------------------------------------------------------------
# Public API.


def _eager_fast(
    t: Any, dtypes: tuple[torch.dtype, ...] = _FAST_DTYPES, any_layout: bool = False
) -> bool:
    """The call can run eagerly on the kernels: a plain CPU contiguous tensor of `dtypes` (or
    of any strided layout, as `_fast_ok`), and no graph capture, torch.func transform or
    forward-mode AD.  (One flat test: this runs on every call, and each Python operation costs
    ~0.1 µs, more with cold caches in a training step.)
    """
    return (
        type(t) in _PLAIN_TYPES
        and not torch.compiler.is_compiling()  # first: dynamo cannot trace is_neg()
        and t.is_cpu
        and t.dtype in dtypes
        and t.layout == torch.strided
        and (any_layout or t.is_contiguous())
        and not t.is_neg()
        and not _c_is_tracing()
        and _dispatch_stack_len() == 0
        and _forward_ad._current_level < 0
        and not _functorch_active()
        and not _is_functorch_tensor(t)
    )


def _call(
    kernels: _Kernels,
    input: torch.Tensor,
    inplace: bool,
    graph_op: Callable[[torch.Tensor, bool], torch.Tensor],  # (input, inplace)
    fallback: Callable[[torch.Tensor, bool], torch.Tensor],
    dtypes: tuple[torch.dtype, ...] = _FAST_DTYPES,
    any_layout: bool = False,
) -> torch.Tensor:
    """Route a call of an elementwise op: eager kernels, the custom op under graph capture (on
    any strided layout with `any_layout`: the op makes a contiguous copy), or PyTorch's own op
    (`fallback(input, inplace)`) for everything else; PyTorch's in-place refusals are checked
    before any data changes wherever fastselu.torch decides the route."""
    if _eager_fast(input, dtypes):
        if inplace:
            _check_inplace(input)
        return _run(kernels, input, inplace)
    if not isinstance(input, torch.Tensor):
        return fallback(input, inplace)
    if _graph_capture():
        if not _fast_ok(input, dtypes, any_layout):
            return fallback(input, inplace)
        # The custom op goes into the graph; in place = the op, then a copy (functionalized
        # away), so that its gradient must work from the result (the copy_ overwrites x).
        return input.copy_(graph_op(input, True)) if inplace else graph_op(input, False)
    if type(input) in _PLAIN_TYPES and not _torch_only() and not _is_functorch_tensor(input):
        if inplace:
            _check_inplace(input)  # PyTorch's own op may write first and raise afterwards
    return fallback(input, inplace)  # other dtypes/devices/layouts, subclasses, torch.func


def _selu_graph_op(t: torch.Tensor, inplace: bool) -> torch.Tensor:
    """The custom op saving what the eager call saves: out of place, float16/bfloat16 save x (a
    result rounded to 11 (8) bits loses SELU'(x) where y + SA cancels: ~60% off at x ~ -6 in
    float16), float32/float64 the result."""
    return cast(torch.Tensor, _selu_op(t, not inplace and t.dtype in _HALF_DTYPES))


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.selu(input, inplace=False)`` using fastselu's kernels.

    CPU float32/float64 contiguous tensors run fastselu (zero-copy); anything else is passed to
    ``torch.nn.functional.selu``.  With ``inplace=True`` the tensor itself is modified and returned.
    """
    if not inplace and _eager_fast(input) and input.requires_grad and torch.is_grad_enabled():
        kernels = _SELU if input.dtype in _FULL_DTYPES else _SELU_FROM_INPUT
        return cast(torch.Tensor, _eager_apply(kernels, input))  # a training step's path, flat
    return _call(_SELU, input, inplace, _selu_graph_op, _F.selu)


def selu_(input: torch.Tensor) -> torch.Tensor:
    """In-place SELU, as ``torch.selu_``: returns the same tensor."""
    return selu(input, inplace=True)


class SELU(torch.nn.Module):
    """Drop-in for ``torch.nn.SELU(inplace=False)`` using fastselu's kernels.

    No parameters or buffers, so ``state_dict`` is the same as with ``torch.nn.SELU``; the repr is
    PyTorch's (``SELU()`` / ``SELU(inplace=True)``).
    """

    __constants__ = ["inplace"]
    inplace: bool

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return selu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


# --------------------------------------------------------------------------------------------
# AlphaDropout, FeatureAlphaDropout, the fused SELU + AlphaDropout, and lecun_normal_.
#
# The mask is fastselu's counter-based one (Philox4x32-10 of the seed and each element's logical
# index, SPEC "Self-normalizing companions"): the backward recomputes it, so autograd saves the
# seed and x (the fused op, out of place), the result (fused, in place) or nothing (AlphaDropout
# alone), never a mask.  Each training call draws its seed with one torch random op on the
# default CPU generator or `generator=`, in eager mode and in a compiled graph alike.

_SEED_LOW, _SEED_HIGH = -(2**63), 2**63 - 1


def _draw_seed(generator: Optional[torch.Generator]) -> torch.Tensor:
    """A 0-d int64 tensor of random bits: the call's seed (one torch random op)."""
    return torch.randint(_SEED_LOW, _SEED_HIGH, (), dtype=torch.int64, generator=generator)


def _seed_int(seed: torch.Tensor) -> int:
    return int(seed.item()) & 0xFFFFFFFFFFFFFFFF  # int64 bits as the unsigned seed


def _check_p(p: Any) -> None:
    if p < 0.0 or p > 1.0:  # PyTorch's own test and message
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


@torch.library.custom_op("fastselu::alpha_dropout", mutates_args=())
def _dropout_op(
    x: torch.Tensor,
    p: float,
    seed: torch.Tensor,
    feature: bool,
    fused: bool,
    save_input: bool = False,
) -> torch.Tensor:
    """AlphaDropout (of SELU(x) if `fused`) with fastselu's mask, as a new contiguous tensor;
    fused, its gradient works from the result, or from x if `save_input`."""
    out = _empty_like(x)
    _DropoutKernels(p, seed, feature, fused, False).forward(_nd(x.contiguous()), _nd(out))
    return out


@_dropout_op.register_fake
def _dropout_fake(
    x: torch.Tensor,
    p: float,
    seed: torch.Tensor,
    feature: bool,
    fused: bool,
    save_input: bool = False,
) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("fastselu::alpha_dropout_backward", mutates_args=())
def _dropout_backward_op(
    grad: torch.Tensor,
    saved: Optional[torch.Tensor],
    p: float,
    seed: torch.Tensor,
    feature: bool,
    fused: bool,
    is_result: bool,
) -> torch.Tensor:
    """The gradient w.r.t. the input; `saved` is x or (is_result) the fused output, or None
    for AlphaDropout alone."""
    out = _empty_like(grad)
    s = None if saved is None else _nd(saved.to(grad.dtype).contiguous())
    _DropoutKernels(p, seed, feature, fused, is_result).backward(
        _nd(grad.contiguous()), s, _nd(out)
    )
    return out


@_dropout_backward_op.register_fake
def _dropout_backward_fake(
    grad: torch.Tensor,
    saved: Optional[torch.Tensor],
    p: float,
    seed: torch.Tensor,
    feature: bool,
    fused: bool,
    is_result: bool,
) -> torch.Tensor:
    return torch.empty(grad.shape, dtype=grad.dtype, device=grad.device)


def _dropout_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, ctx.p, seed, ctx.feature, ctx.fused, ctx.from_x = inputs
    ctx.save_for_backward(seed, (x if ctx.from_x else output) if ctx.fused else None)


def _dropout_backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
    seed, saved = ctx.saved_tensors
    g = _dropout_backward_op(grad, saved, ctx.p, seed, ctx.feature, ctx.fused, not ctx.from_x)
    return g, None, None, None, None, None


_dropout_op.register_autograd(_dropout_backward, setup_context=_dropout_setup_context)


def _bwd_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    grad, saved, ctx.p, seed, ctx.feature, ctx.fused, ctx.is_result = inputs
    ctx.save_for_backward(grad, saved, seed)


def _bwd_backward(ctx: Any, gg: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
    """The backward is linear in grad; in x it is grad * a * mask * SELU'(x), whose derivative is
    the same expression for x <= 0 and 0 above; from the fused output z it is grad where kept
    and z < zmin (z + a*SA*q, derivative 1), else constant."""
    grad, saved, seed = ctx.saved_tensors
    args = (ctx.p, seed, ctx.feature, ctx.fused)
    d_grad = d_saved = None
    if ctx.needs_input_grad[0]:
        d_grad = _dropout_backward_op(gg, saved, *args, ctx.is_result)
    if ctx.needs_input_grad[1] and ctx.fused:
        if not ctx.is_result:
            d_saved = (saved <= 0) * _dropout_backward_op(gg * grad, saved, *args, False)
        else:
            kept = (
                _dropout_backward_op(
                    torch.ones_like(gg), None, ctx.p, seed, ctx.feature, False, False
                )
                != 0
            )
            zmin = float(_dropout.params(ctx.p, str(saved.dtype)[6:])[_dropout.P_ZMIN])
            d_saved = gg * grad * (kept & (saved < zmin))
    return d_grad, d_saved, None, None, None, None, None


_dropout_backward_op.register_autograd(_bwd_backward, setup_context=_bwd_setup_context)


class _DropoutKernels(_Kernels):
    """One training call's AlphaDropout (of SELU if `fused`): p, seed and layout on the instance.

    The eager calls run the backend's dropout kernels directly (the front end's checks hold by
    construction: `_eager_fast` tensors, one dtype, the result allocated here): the compiled
    ones on the tensors' addresses, others on flat NumPy views (bfloat16 as its bits)."""

    def __init__(
        self, p: float, seed: torch.Tensor, feature: bool, fused: bool, is_result: bool
    ) -> None:
        self.p, self.seed_t, self.seed = float(p), seed, _seed_int(seed)
        self.feature, self.fused = feature, fused
        self.is_result = is_result  # the fused backward works from the result (in place)
        self.saves_result = False
        self.saves_input = fused  # AlphaDropout alone needs only the seed

    def _plan(self, shape: Any, fmt: str) -> tuple[np.ndarray, tuple[int, int], int]:
        """(prm, key, inner) for a kernel call on the flat elements of an array of `shape`
        (feature mode below 2 dimensions: the front end's ValueError, where a mask is drawn)."""
        inner = _api._feature_inner(tuple(shape), self.feature, self.p < 1.0)
        return _dropout.params(self.p, fmt), _dropout.key_of(self.seed), inner

    def _mode(self) -> int:
        return (2 if self.is_result else 1) if self.fused else 0

    def _compiled(self) -> bool:
        return _dropout_at is not None and _backends.active is _KERNELS

    def forward_t(self, x: torch.Tensor, out: torch.Tensor) -> None:
        if not self._compiled():
            self.forward(_nd(x), _nd(out))
            return
        prm, (k0, k1), inner = self._plan(x.shape, _FORMAT[x.dtype])
        nt = _config.effective_num_threads()
        assert _dropout_at is not None
        _dropout_at(
            0,
            _AT_CODE[x.dtype],
            0,
            x.data_ptr(),
            out.data_ptr(),
            x.numel(),
            prm,
            k0,
            k1,
            inner,
            self.fused,
            nt,
        )

    def backward_t(
        self, grad: torch.Tensor, saved: Optional[torch.Tensor], out: torch.Tensor
    ) -> None:
        if saved is not None and saved.dtype is not grad.dtype:  # (not from autograd's calls)
            saved = saved.to(grad.dtype)
        if not self._compiled():
            self.backward(_nd(grad), None if saved is None else _nd(saved), _nd(out))
            return
        prm, (k0, k1), inner = self._plan(grad.shape, _FORMAT[grad.dtype])
        x = grad if saved is None else saved
        nt = _config.effective_num_threads()
        assert _dropout_at is not None
        _dropout_at(
            1,
            _AT_CODE[grad.dtype],
            grad.data_ptr(),
            x.data_ptr(),
            out.data_ptr(),
            grad.numel(),
            prm,
            k0,
            k1,
            inner,
            self._mode(),
            nt,
        )

    def _views(
        self, arrays: tuple[np.ndarray, ...]
    ) -> tuple[list[np.ndarray], np.ndarray, tuple[int, int], int, Optional[str]]:
        """Flat views for the backend's kernels (16-bit as uint16 bits, with their fmt) and the
        call's (prm, key, inner)."""
        a = arrays[0]
        fmt = "bfloat16" if a.dtype == np.int16 else a.dtype.name  # `_nd`'s bfloat16 bits
        prm, key, inner = self._plan(a.shape, fmt)
        bits = a.dtype.itemsize == 2
        flat = [v.reshape(-1).view(np.uint16) if bits else v.reshape(-1) for v in arrays]
        return flat, prm, key, inner, fmt if bits else None

    def forward(self, x: np.ndarray, out: Optional[np.ndarray]) -> None:
        (xs, os_), prm, key, inner, fmt = self._views((x, x if out is None else out))
        nt = _config.effective_num_threads()
        _api._dropout_backend().dropout(xs, os_, prm, key, 0, inner, self.fused, nt, fmt=fmt)

    def backward(self, grad: np.ndarray, saved: Optional[np.ndarray], out: np.ndarray) -> None:
        (gs, xs, os_), prm, key, inner, fmt = self._views(
            (grad, grad if saved is None else saved, out)
        )
        nt = _config.effective_num_threads()
        kernels = _api._dropout_backend()
        kernels.dropout_backward(gs, xs, os_, prm, key, 0, inner, self._mode(), nt, fmt=fmt)

    def backward_op(self, grad: torch.Tensor, saved: Optional[torch.Tensor]) -> torch.Tensor:
        return cast(
            torch.Tensor,
            _dropout_backward_op(
                grad, saved, self.p, self.seed_t, self.feature, self.fused, self.is_result
            ),
        )


def _torch_alpha_dropout(
    input: torch.Tensor,
    p: float,
    training: bool,
    inplace: bool,
    feature: bool,
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    """PyTorch's own AlphaDropout (other devices and dtypes, subclasses, torch.func)."""
    if generator is None or not training or p == 0.0 or p == 1.0:
        fn = _F.feature_alpha_dropout if feature else _F.alpha_dropout
        return fn(input, p, training, inplace)
    # PyTorch's formula (aten _dropout_impl), with the noise drawn from `generator`.
    if feature and input.dim() < 2:
        return _F.feature_alpha_dropout(input, p, training, inplace)  # PyTorch's error
    if feature:
        shape = (*input.shape[:2], *([1] * (input.dim() - 2)))
        noise = torch.empty(shape, dtype=input.dtype, device=input.device)
    else:
        noise = torch.empty_like(input)  # PyTorch's: the input's layout, so the same draws
    noise.bernoulli_(1 - p, generator=generator)
    alpha = SCALE_ALPHA_F64
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    b = noise.add(-1).mul_(alpha * a).add_(alpha * a * p)
    noise.mul_(a)
    return input.mul_(noise).add_(b) if inplace else input * noise + b


def _alpha_dropout_call(
    input: torch.Tensor,
    p: float,
    training: bool,
    inplace: bool,
    feature: bool,
    fused: bool,
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    _check_p(p)
    if not training or p == 0.0:  # the identity: the input object itself (fused: SELU)
        return selu(input, inplace) if fused else input
    if feature and p < 1.0 and isinstance(input, torch.Tensor) and input.dim() < 2:
        return _F.feature_alpha_dropout(input, p, True, False)  # raises PyTorch's error

    def fallback(t: torch.Tensor, inplace: bool) -> torch.Tensor:
        if fused:
            t = _F.selu(t, inplace)
        return _torch_alpha_dropout(t, p, True, inplace, feature, generator)

    def graph_op(t: torch.Tensor, inplace: bool) -> torch.Tensor:  # saves what eager saves
        seed = _draw_seed(generator)
        return cast(torch.Tensor, _dropout_op(t, float(p), seed, feature, fused, not inplace))

    if _eager_fast(input, _DROPOUT_DTYPES, any_layout=True):  # checks first: a seed is drawn
        if inplace:  # only for a real call
            _check_inplace(input)
        if not input.is_contiguous():  # the mask goes by C-order index, whatever the layout
            out = _alpha_dropout_call(input.contiguous(), p, True, False, feature, fused, generator)
            return input.copy_(out) if inplace else out
        kernels = _DropoutKernels(p, _draw_seed(generator), feature, fused, inplace)
        return _run(kernels, input, inplace)
    # not the eager path (graph capture on a contiguous copy, as above)
    return _call(_SELU, input, inplace, graph_op, fallback, _DROPOUT_DTYPES, any_layout=True)


def alpha_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.alpha_dropout`` with fastselu's counter-based mask."""
    return _alpha_dropout_call(input, p, training, inplace, False, False, generator)


def feature_alpha_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.feature_alpha_dropout``: one draw per (sample,
    channel), shared over the trailing dimensions."""
    return _alpha_dropout_call(input, p, training, inplace, True, False, generator)


def selu_alpha_dropout(
    input: torch.Tensor,
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
    feature: bool = False,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """``alpha_dropout(selu(input), p, training)`` (feature: ``feature_alpha_dropout``) in one
    pass; SELU alone when not training or p = 0."""
    return _alpha_dropout_call(input, p, training, inplace, feature, True, generator)


class _AlphaDropoutBase(torch.nn.Module):
    __constants__ = ["p", "inplace"]
    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        _check_p(p)
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class AlphaDropout(_AlphaDropoutBase):
    """Drop-in for ``torch.nn.AlphaDropout(p=0.5, inplace=False)`` (fastselu's mask; in place when
    asked, where PyTorch's module ignores `inplace`)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(_AlphaDropoutBase):
    """Drop-in for ``torch.nn.FeatureAlphaDropout(p=0.5, inplace=False)``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return feature_alpha_dropout(input, self.p, self.training, self.inplace)


class SELUAlphaDropout(_AlphaDropoutBase):
    """``Sequential(SELU(), AlphaDropout(p))`` (``FeatureAlphaDropout`` with feature=True) in
    one pass, without a mask in memory; SELU alone in eval mode."""

    __constants__ = ["p", "inplace", "feature"]
    feature: bool

    def __init__(self, p: float = 0.5, inplace: bool = False, feature: bool = False) -> None:
        super().__init__(p, inplace)
        self.feature = feature

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return selu_alpha_dropout(input, self.p, self.training, self.inplace, self.feature)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}, feature={self.feature}"


def lecun_normal_(
    tensor: torch.Tensor, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Fill `tensor` with Keras's lecun_normal (normal, sigma = sqrt(1/fan_in)/0.8796..., truncated
    to [-2 sigma, 2 sigma]) in place, fan_in by PyTorch's rule (size(1) * prod(size[2:])), drawn
    from PyTorch's generator (so torch.manual_seed repeats it); returns `tensor`."""
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(tensor)  # PyTorch's rule and error
    sigma = math.sqrt(1.0 / max(1, fan_in)) / _api._TRUNC_STD
    with torch.no_grad():
        return torch.nn.init.trunc_normal_(
            tensor, 0.0, sigma, -2 * sigma, 2 * sigma, generator=generator
        )
