"""threadpoolctl integration: fastselu is listed by threadpool_info(), obeys threadpool_limits."""

import json

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")
if not hasattr(threadpoolctl, "register"):
    pytest.skip("threadpoolctl < 3.5 has no register()", allow_module_level=True)

import fastselu  # noqa: E402
from fastselu import _backends, _config  # noqa: E402
from util import run_python  # noqa: E402

pytestmark = pytest.mark.skipif(
    "cython" not in fastselu.available_backends(),
    reason="threadpoolctl finds fastselu through its compiled extension",
)


def _entries():
    return [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "fastselu"]


@pytest.fixture(autouse=True)
def threads(restore_threads):
    fastselu.set_num_threads(4)  # more than 1 whatever this machine has
    yield


def test_threadpool_info_lists_fastselu():
    assert fastselu._threadpool.registered
    [entry] = _entries()
    kernels = _backends.load("cython")
    assert entry["user_api"] == "fastselu" and entry["prefix"] == "_kernels"
    assert entry["num_threads"] == fastselu.get_num_threads() == 4
    assert entry["version"] == fastselu.__version__
    assert entry["filepath"] == kernels.__file__


def test_threadpool_limits_caps_and_restores():
    with threadpoolctl.threadpool_limits(1):
        assert fastselu.get_num_threads() == 1
        assert _entries()[0]["num_threads"] == 1
    assert fastselu.get_num_threads() == 4
    assert _config._threadpool_limit is None  # lifted, not left at 4


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(limits=1, user_api="fastselu"),
        dict(limits={"fastselu": 1}),
        dict(limits={"_kernels": 1}),  # by prefix
    ],
)
def test_threadpool_limits_forms(kwargs):
    with threadpoolctl.threadpool_limits(**kwargs):
        assert fastselu.get_num_threads() == 1
    assert fastselu.get_num_threads() == 4


def test_other_apis_do_not_limit_fastselu():
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert fastselu.get_num_threads() == 4


def test_controller_api_and_decorator():
    controller = threadpoolctl.ThreadpoolController()
    selected = controller.select(internal_api="fastselu")
    assert len(selected.lib_controllers) == 1
    with selected.limit(limits=2):
        assert fastselu.get_num_threads() == 2
    assert fastselu.get_num_threads() == 4

    @threadpoolctl.threadpool_limits.wrap(limits=1, user_api="fastselu")
    def inner():
        return fastselu.get_num_threads()

    assert inner() == 1 and fastselu.get_num_threads() == 4


def test_nested_limits():
    with threadpoolctl.threadpool_limits(2):
        assert fastselu.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(1):
            assert fastselu.get_num_threads() == 1
        assert fastselu.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(16):  # a limit is a cap, never an increase
            assert fastselu.get_num_threads() == 4
        assert fastselu.get_num_threads() == 2
    assert fastselu.get_num_threads() == 4 and _config._threadpool_limit is None


def test_no_stale_cap_after_set_num_threads():
    with threadpoolctl.threadpool_limits(1):
        fastselu.set_num_threads(3)
        assert fastselu.get_num_threads() == 1  # the active limit wins
    assert fastselu.get_num_threads() == 3  # and nothing is left behind
    with threadpoolctl.threadpool_limits(2):
        pass
    fastselu.set_num_threads(6)
    assert fastselu.get_num_threads() == 6


def test_thread_limit_scope_probe():
    # threadpool_info(debugging_info=True) sets and restores the count from another thread.
    [entry] = [
        i
        for i in threadpoolctl.threadpool_info(debugging_info=True)
        if i["internal_api"] == "fastselu"
    ]
    assert entry["thread_limit_scope"] == "process"
    assert fastselu.get_num_threads() == 4 and _config._threadpool_limit is None


def test_compiled_kernels_get_the_limited_count():
    kernels = _backends.load("cython")
    seen = []

    def source():
        n = _config.effective_num_threads()
        seen.append(n)
        return n

    previous = fastselu.get_backend()
    fastselu.set_backend("cython")
    kernels.set_thread_source(source)
    try:
        x = np.ones(1 << 20, dtype=np.float32)
        with threadpoolctl.threadpool_limits(1):
            fastselu.selu(x)
            fastselu.selu_backward(x, x)
        assert seen and set(seen) == {1}
        seen.clear()
        fastselu.selu(x)
        assert set(seen) == {4}
    finally:
        kernels.set_thread_source(_config.effective_num_threads)
        fastselu.set_backend(previous)


def test_generic_path_gets_the_limited_count(monkeypatch):
    # Strided input through the front end's chunked path, on the NumPy backend.
    previous = fastselu.get_backend()
    fastselu.set_backend("numpy")
    try:
        seen = []
        real = _backends.active.forward

        def spy(x, out, nthreads):
            seen.append(nthreads)
            return real(x, out, nthreads)

        monkeypatch.setattr(_backends.active, "forward", spy)
        x = np.ones((1000, 400))[:, ::2]
        with threadpoolctl.threadpool_limits(1):
            fastselu.selu(x)
        assert seen and set(seen) == {1}
    finally:
        fastselu.set_backend(previous)


@pytest.mark.parametrize(
    "code",
    [
        "import threadpoolctl, fastselu",  # either import order
        "import fastselu, threadpoolctl",
    ],
)
def test_registration_in_fresh_process(code):
    r = run_python(
        code + "; import json; print(json.dumps(["
        "i['num_threads'] for i in threadpoolctl.threadpool_info() "
        "if i['user_api'] == 'fastselu']))",
        FASTSELU_NUM_THREADS="3",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [3]


def test_listed_with_another_backend_active():
    r = run_python(
        "import fastselu, threadpoolctl; assert fastselu.get_backend() == 'numpy'; "
        "print([i['user_api'] for i in threadpoolctl.threadpool_info()])",
        FASTSELU_BACKEND="numpy",
    )
    assert r.returncode == 0, r.stderr
    assert "'fastselu'" in r.stdout


def test_without_threadpoolctl():
    r = run_python(
        "import sys; sys.modules['threadpoolctl'] = None; import fastselu; "
        "assert not fastselu._threadpool.registered; print(fastselu.selu(1.0))"
    )
    assert r.returncode == 0, r.stderr


def test_threadpoolctl_command_line():
    r = run_python(None, "-m", "threadpoolctl", "-i", "fastselu")
    assert r.returncode == 0, r.stderr
    entries = [i for i in json.loads(r.stdout) if i["user_api"] == "fastselu"]
    assert len(entries) == 1 and entries[0]["thread_limit_scope"] == "process"
