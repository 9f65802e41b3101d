import os

import pytest
from hypothesis import HealthCheck, settings

import fastselu
from util import switched_backend

settings.register_profile(
    "fastselu",
    deadline=None,
    max_examples=60,
    # `backend` is function-scoped on purpose: it selects the backend once for all examples.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastselu"))

BACKENDS = fastselu.available_backends()


def pytest_report_header(config):
    # Which copy is under test matters: an uncompiled source folder would quietly fall back.
    return (
        f"fastselu {fastselu.__version__} from {os.path.dirname(fastselu.__file__)}; "
        f"backend {fastselu.get_backend()}, available {', '.join(BACKENDS)}"
    )


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per backend that loads here, restoring the previous one afterwards."""
    with switched_backend(request.param) as name:
        yield name


@pytest.fixture
def restore_threads():
    from fastselu import _config

    saved = (_config._num_threads, _config._threadpool_limit)
    yield
    _config._num_threads, _config._threadpool_limit = saved
