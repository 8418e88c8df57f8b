import numpy as np
import pytest

import fastopt
import fastopt.reference

IMPLEMENTATIONS = {"fastopt": fastopt, "reference": fastopt.reference}
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request):
    """Each implementation of the array-level API in turn."""
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param
