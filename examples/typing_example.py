"""Every public fastselu name, used with precise types: `mypy --strict examples/typing_example.py`.

tests/test_typing.py runs exactly that (and runs this file).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

import fastselu


def main() -> None:
    version: str = fastselu.__version__
    constants: tuple[float, float] = (fastselu.ALPHA, fastselu.SCALE)

    x32: npt.NDArray[np.float32] = np.linspace(-3, 3, 101, dtype=np.float32)
    x64: npt.NDArray[np.float64] = np.linspace(-3, 3, 101)

    # Out of place: float arrays keep their dtype in the types too.
    y32: npt.NDArray[np.float32] = fastselu.selu(x32)
    y64: npt.NDArray[np.float64] = fastselu.selu(x64)
    from_list: npt.NDArray[np.floating] = fastselu.selu([[-1.0, 0.0], [1.0, 2.0]])
    from_ints: npt.NDArray[np.floating] = fastselu.selu(np.arange(-3, 4))
    scalar: np.floating = fastselu.selu(-1.5)

    # Into `out`, and in place: the very array passed is returned.
    out: npt.NDArray[np.float32] = np.empty_like(x32)
    same_out: npt.NDArray[np.float32] = fastselu.selu(x32, out=out)
    buf = x64.copy()
    same_buf: npt.NDArray[np.float64] = fastselu.selu(buf, inplace=True)
    again: npt.NDArray[np.float64] = fastselu.selu_(buf)
    assert same_out is out and same_buf is buf and again is buf

    # Gradients, from x or from the forward result y.
    g32: npt.NDArray[np.float32] = fastselu.selu_backward(np.ones_like(x32), x32)
    g64: npt.NDArray[np.float64] = fastselu.selu_backward(np.ones_like(y64), y64, is_result=True)
    gout: npt.NDArray[np.float32] = fastselu.selu_backward(
        np.ones_like(x32), y32, is_result=True, out=np.empty_like(x32)
    )
    gscalar: np.floating = fastselu.selu_backward(1.0, -0.5)

    # The module-like object.
    act = fastselu.SELU(inplace=False)
    inplace_flag: bool = act.inplace
    z: npt.NDArray[np.float32] = act(x32)
    name: str = repr(act)

    # Backends and threads.
    backends: tuple[str, ...] = fastselu.available_backends()
    current: str = fastselu.get_backend()
    fastselu.set_backend(backends[-1])
    fastselu.set_backend(current)
    threads: int = fastselu.get_num_threads()
    fastselu.set_num_threads(threads)
    fastselu.show_config()

    assert np.array_equal(z, y32) and name == "SELU(inplace=False)" and not inplace_flag
    assert y32.dtype == np.float32 and from_ints.dtype == np.float64 and g32.shape == gout.shape
    print(version, constants, from_list.shape, float(scalar), float(gscalar), g64.dtype)


if __name__ == "__main__":
    main()
