# Type stubs for fastselu's public API (the package ships py.typed).
#
# Run-time behaviour the types cannot say exactly: a 0-d *array* input gives a NumPy scalar, as
# numpy.exp does (typed here as an array, the common case); float32/float16/float64 inputs keep
# their dtype, bool/integer inputs give float64.  Keep in sync with fastselu/__init__.py
# (tests/test_typing.py checks the names and runs mypy.stubtest).

from typing import Any, Literal, Optional, TypeVar, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str
__all__: list[str]

ALPHA: float
SCALE: float

_Float = TypeVar("_Float", np.float16, np.float32, np.float64)
_Array = TypeVar("_Array", bound=np.ndarray[Any, Any])
_ScalarIn = Union[float, np.generic]  # Python bool/int/float and NumPy scalars
_Result = npt.NDArray[np.floating[Any]]

@overload
def selu(
    x: _ScalarIn, out: None = None, *, inplace: Literal[False] = False
) -> np.floating[Any]: ...
@overload
def selu(x: _Array, out: None = None, *, inplace: Literal[True]) -> _Array: ...
@overload
def selu(x: npt.ArrayLike, out: _Array, *, inplace: Literal[False] = False) -> _Array: ...
@overload
def selu(
    x: npt.NDArray[_Float], out: None = None, *, inplace: Literal[False] = False
) -> npt.NDArray[_Float]: ...
@overload
def selu(x: npt.ArrayLike, out: None = None, *, inplace: Literal[False] = False) -> _Result: ...
@overload
def selu(
    x: npt.ArrayLike, out: Optional[np.ndarray[Any, Any]] = None, *, inplace: bool = False
) -> Union[_Result, np.floating[Any]]: ...
def selu_(x: _Array) -> _Array: ...
@overload
def selu_backward(
    grad_output: _ScalarIn, x: _ScalarIn, *, is_result: bool = False, out: None = None
) -> np.floating[Any]: ...
@overload
def selu_backward(
    grad_output: npt.ArrayLike, x: npt.ArrayLike, *, is_result: bool = False, out: _Array
) -> _Array: ...
@overload
def selu_backward(
    grad_output: npt.NDArray[_Float],
    x: npt.NDArray[_Float],
    *,
    is_result: bool = False,
    out: None = None,
) -> npt.NDArray[_Float]: ...
@overload
def selu_backward(
    grad_output: npt.ArrayLike, x: npt.ArrayLike, *, is_result: bool = False, out: None = None
) -> _Result: ...

_Seed = Union[int, np.integer[Any], np.random.Generator, None]

@overload
def alpha_dropout(
    x: _ScalarIn,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> np.floating[Any]: ...
@overload
def alpha_dropout(
    x: _Array,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[True],
) -> _Array: ...
@overload
def alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: _Array,
    inplace: Literal[False] = False,
) -> _Array: ...
@overload
def alpha_dropout(
    x: npt.NDArray[_Float],
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> npt.NDArray[_Float]: ...
@overload
def alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> _Result: ...
@overload
def selu_alpha_dropout(
    x: _ScalarIn,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> np.floating[Any]: ...
@overload
def selu_alpha_dropout(
    x: _Array,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[True],
) -> _Array: ...
@overload
def selu_alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: _Array,
    inplace: Literal[False] = False,
) -> _Array: ...
@overload
def selu_alpha_dropout(
    x: npt.NDArray[_Float],
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> npt.NDArray[_Float]: ...
@overload
def selu_alpha_dropout(
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
    inplace: Literal[False] = False,
) -> _Result: ...
@overload
def alpha_dropout_backward(
    grad_output: _ScalarIn,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
) -> np.floating[Any]: ...
@overload
def alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: _Array,
) -> _Array: ...
@overload
def alpha_dropout_backward(
    grad_output: npt.NDArray[_Float],
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
) -> npt.NDArray[_Float]: ...
@overload
def alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    out: None = None,
) -> _Result: ...
@overload
def selu_alpha_dropout_backward(
    grad_output: _ScalarIn,
    x: _ScalarIn,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
    out: None = None,
) -> np.floating[Any]: ...
@overload
def selu_alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
    out: _Array,
) -> _Array: ...
@overload
def selu_alpha_dropout_backward(
    grad_output: npt.NDArray[_Float],
    x: npt.NDArray[_Float],
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
    out: None = None,
) -> npt.NDArray[_Float]: ...
@overload
def selu_alpha_dropout_backward(
    grad_output: npt.ArrayLike,
    x: npt.ArrayLike,
    p: float = 0.5,
    *,
    seed: _Seed,
    feature: bool = False,
    training: bool = True,
    is_result: bool = False,
    out: None = None,
) -> _Result: ...
def lecun_normal(
    shape: Union[int, tuple[int, ...]],
    *,
    fan_in: Optional[int] = None,
    dtype: npt.DTypeLike = ...,
    rng: Union[np.random.Generator, int, None] = None,
) -> npt.NDArray[np.floating[Any]]: ...

class SELU:
    """Callable module in the style of ``torch.nn.SELU``: ``SELU()(x)``."""

    inplace: bool
    def __init__(self, inplace: bool = False) -> None: ...
    @overload
    def __call__(self, x: _ScalarIn) -> np.floating[Any]: ...
    @overload
    def __call__(self, x: npt.NDArray[_Float]) -> npt.NDArray[_Float]: ...
    @overload
    def __call__(self, x: npt.ArrayLike) -> _Result: ...
    forward = __call__

def get_backend() -> str: ...
def set_backend(name: str) -> None: ...
def available_backends() -> tuple[str, ...]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def show_config() -> None: ...
