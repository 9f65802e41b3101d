"""PyTorch drop-in for ``torch.nn.SELU`` / ``torch.nn.functional.selu`` backed by fastselu's kernels.

    import fastselu.torch as fst
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), fst.SELU(), torch.nn.Linear(64, 1))

What runs where:

* CPU float32/float64 contiguous tensors run fastselu's kernels, zero-copy: the kernels read and
  write the tensors' own memory through ``Tensor.numpy()`` views.  An out-of-place call allocates
  only the result; an in-place call allocates nothing.
* Everything else falls back to PyTorch's own ``torch.nn.functional.selu``, so any tensor works:
  other devices, float16/bfloat16/other dtypes, non-contiguous tensors, tensor subclasses, and
  calls under forward-mode AD or a ``torch.func`` transform (``vmap``, ``grad``, ``jacrev``...).
* Autograd: the out-of-place op is the ``torch.library`` custom op ``fastselu::selu`` (with a fake
  implementation, so ``torch.compile`` traces it into the graph).  Its backward is a
  second custom op, ``fastselu::selu_backward(grad, result)``, computed from the saved *result*
  (SELU'(x) = SCALE for y > 0, y + SCALE*ALPHA otherwise), itself differentiable, so
  ``create_graph=True`` / ``gradgradcheck`` work.  The in-place form (``inplace=True``) is an
  ``autograd.Function`` that marks the tensor dirty (the version counter is bumped, as by
  ``torch.selu_``) and uses the saved result in backward; under ``torch.compile`` it is written as
  the custom op followed by ``copy_`` (functionalization turns it back into an in-place update).
* Without autograd (``torch.no_grad()``, inference mode, tensors that do not require grad) an eager
  call skips the dispatcher and calls the kernel directly (about 2 µs of overhead per call).

Numbers: fastselu's results are within 1 ULP of the exact SELU; PyTorch's own are up to 1.6 (float32)
/ 2.4 (float64) ULP off, so results agree with ``torch.nn.SELU`` to a few ULPs, not bit for bit.  The
derivative at NaN is NaN (PyTorch's is SCALE).  The kernels use fastselu's thread setting
(``fastselu.set_num_threads``), not ``torch.set_num_threads``.

This module imports torch (the absolute ``import torch`` below is the real PyTorch, not this file);
``import fastselu`` alone never does.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

import numpy as np
import torch
import torch.nn.functional as _F

from . import _api, _backends
from ._constants import SCALE, SCALE_ALPHA_F64

__all__ = ["SELU", "selu", "selu_"]

_FAST_DTYPES = (torch.float32, torch.float64)
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
# Private hooks, looked up defensively: if one is missing, assume the machinery is active (safe).
_functorch_active: Callable[[], bool] = getattr(
    torch._C, "_are_functorch_transforms_active", lambda: True
)
_dispatch_stack_len: Callable[[], int] = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 1)
_is_tracing: Callable[[], bool] = torch.jit.is_tracing  # type: ignore[attr-defined]
_c_is_tracing: Callable[[], bool] = getattr(torch._C, "_is_tracing", _is_tracing)
_forward_ad = torch.autograd.forward_ad


def _fast_ok(t: torch.Tensor) -> bool:
    """True if the kernels can work on `t`'s memory directly: CPU, float32/64, C-contiguous."""
    return (
        t.is_cpu
        and t.dtype in _FAST_DTYPES
        and t.layout == torch.strided
        and t.is_contiguous()
    )


def _nd(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (no copy)."""
    return t.detach().numpy()


def _graph_capture() -> bool:
    """torch.compile/export, torch.jit.trace or a dispatch mode (make_fx, FakeTensorMode) is on."""
    return torch.compiler.is_compiling() or _is_tracing() or _dispatch_stack_len() > 0


def _torch_only() -> bool:
    """Forward-mode AD or a torch.func transform is active: only PyTorch's own SELU supports them."""
    return _forward_ad._current_level >= 0 or _functorch_active()


# --------------------------------------------------------------------------------------------
# Custom ops (the out-of-place forward and the backward from the result).


@torch.library.custom_op("fastselu::selu", mutates_args=())
def _selu_op(x: torch.Tensor) -> torch.Tensor:
    """SELU(x) as a new contiguous tensor (fastselu's kernels on CPU float32/float64)."""
    if x.dtype in _FAST_DTYPES and x.device.type == "cpu" and x.layout == torch.strided:
        xc = x.contiguous()
        out = torch.empty(x.shape, dtype=x.dtype, device="cpu")
        _api.selu(_nd(xc), out=_nd(out))
        return out
    return _F.selu(x).contiguous()


@_selu_op.register_fake
def _selu_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("fastselu::selu_backward", mutates_args=())
def _selu_backward_op(grad: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """grad * SELU'(x) from the forward result: SCALE where result > 0, else result + SCALE*ALPHA."""
    if (
        grad.dtype == result.dtype
        and result.dtype in _FAST_DTYPES
        and grad.device.type == "cpu"
        and result.device.type == "cpu"
        and grad.layout == torch.strided
        and result.layout == torch.strided
        and grad.shape == result.shape
    ):
        out = torch.empty(result.shape, dtype=result.dtype, device="cpu")
        _api.selu_backward(
            _nd(grad.contiguous()), _nd(result.contiguous()), is_result=True, out=_nd(out)
        )
        return out
    deriv = torch.where(result > 0, SCALE, result + SCALE_ALPHA_F64)
    return (grad * deriv).contiguous()


@_selu_backward_op.register_fake
def _selu_backward_fake(grad: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    shape = torch.broadcast_shapes(grad.shape, result.shape)  # type: ignore[no-untyped-call]
    return torch.empty(shape, dtype=torch.promote_types(grad.dtype, result.dtype), device=result.device)


def _selu_setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    ctx.save_for_backward(output)


def _selu_backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
    (result,) = ctx.saved_tensors
    return cast(torch.Tensor, _selu_backward_op(grad, result))


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
    into `x` itself when `out` is None; ``backward(grad, saved, out)`` writes the gradient given what the forward saved:
    the result if ``saves_result``, else the input.  ``backward_op(grad, saved)`` is the same as
    a differentiable custom op.  Parameters such as p and a seed live on the instance.
    """

    saves_result = True

    def forward(self, x: np.ndarray, out: Optional[np.ndarray]) -> None:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, saved: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def backward_op(self, grad: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grad_input(self, grad: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
        """The gradient w.r.t. the input: kernels when plain, the differentiable op otherwise."""
        if torch.is_grad_enabled():  # create_graph=True: the backward must itself be recorded
            return self.backward_op(grad, saved)
        if not grad.is_contiguous():
            grad = grad.contiguous()  # e.g. the expanded gradient of a sum()
        out = torch.empty_like(saved)
        self.backward(grad.numpy(), saved.detach().numpy(), out.numpy())
        return out


class _SeluKernels(_Kernels):
    # The compiled fast path first (what `_api` itself tries first), `_api` for anything else.
    def forward(self, x: np.ndarray, out: Optional[np.ndarray]) -> None:
        if _backends.fast_forward(x, out, out is None) is NotImplemented:
            _api.selu(x, out=out, inplace=out is None)

    def backward(self, grad: np.ndarray, saved: np.ndarray, out: np.ndarray) -> None:
        if _backends.fast_backward(grad, saved, True, out) is NotImplemented:
            _api.selu_backward(grad, saved, is_result=True, out=out)

    def backward_op(self, grad: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, _selu_backward_op(grad, saved))


_SELU = _SeluKernels()


class _Eager(torch.autograd.Function):
    """Out of place: a new tensor from the kernels; saves the result or the input."""

    @staticmethod
    def forward(ctx: Any, kernels: _Kernels, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)  # x is contiguous, so out is too
        kernels.forward(x.detach().numpy(), out.numpy())
        ctx.kernels = kernels
        ctx.save_for_backward(out if kernels.saves_result else x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (saved,) = ctx.saved_tensors
        return None, ctx.kernels.grad_input(grad, saved)


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
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (result,) = ctx.saved_tensors
        return None, ctx.kernels.grad_input(grad, result)


def _c_apply(fn: type) -> Callable[..., Any]:
    """``fn.apply`` without its Python wrapper (which binds defaults and unwraps functorch's dead
    wrappers: ~7 µs of a ~25 µs call); the callers rule out functorch tensors first."""
    raw = getattr(torch._C, "_FunctionBase", None)
    raw_apply = raw.__dict__.get("apply") if raw is not None else None
    if raw_apply is None or not hasattr(raw_apply, "__get__"):
        return cast(Callable[..., Any], fn.apply)
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
            kernels.forward(input.detach().numpy(), None)  # after apply: see _EagerInplace
            return input
        return cast(torch.Tensor, _eager_apply(kernels, input))
    # Without autograd: the kernels directly.
    xn = input.detach().numpy() if input.requires_grad else input.numpy()
    if inplace:
        kernels.forward(xn, None)
        torch.autograd.graph.increment_version(input)  # as every PyTorch in-place op does
        return input
    out = torch.empty_like(input)
    kernels.forward(xn, out.numpy())
    return out


# --------------------------------------------------------------------------------------------
# Public API.


def _eager_fast(t: Any) -> bool:
    """The call can run eagerly on the kernels: a plain CPU float32/float64 contiguous tensor,
    and no graph capture, torch.func transform or forward-mode AD.  (One flat test: this runs on
    every call, and each Python operation costs ~0.1 µs, more with cold caches in a training step.)
    """
    return (
        type(t) in _PLAIN_TYPES
        and t.is_cpu
        and t.dtype in _FAST_DTYPES
        and t.layout == torch.strided
        and t.is_contiguous()
        and not torch.compiler.is_compiling()
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
    graph_op: Callable[[torch.Tensor], torch.Tensor],
    fallback: Callable[[torch.Tensor, bool], torch.Tensor],
) -> torch.Tensor:
    """Route a call of an elementwise op: eager kernels, the custom op under graph capture, or
    PyTorch's own op (`fallback(input, inplace)`) for everything else; PyTorch's in-place refusals
    are checked before any data changes wherever fastselu.torch decides the route."""
    if _eager_fast(input):
        if inplace:
            _check_inplace(input)
        return _run(kernels, input, inplace)
    if not isinstance(input, torch.Tensor):
        return fallback(input, inplace)
    if _graph_capture():
        if not _fast_ok(input):
            return fallback(input, inplace)
        # The custom op goes into the graph; in place = the op, then a copy (functionalized away).
        return input.copy_(graph_op(input)) if inplace else graph_op(input)
    if type(input) in _PLAIN_TYPES and not _torch_only() and not _is_functorch_tensor(input):
        if inplace:
            _check_inplace(input)  # PyTorch's own op may write first and raise afterwards
    return fallback(input, inplace)  # other dtypes/devices/layouts, subclasses, torch.func


def selu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.selu(input, inplace=False)`` using fastselu's kernels.

    CPU float32/float64 contiguous tensors run fastselu (zero-copy); anything else is passed to
    ``torch.nn.functional.selu``.  With ``inplace=True`` the tensor itself is modified and returned.
    """
    return _call(_SELU, input, inplace, _selu_op, _F.selu)


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
