import numpy as np
import pytest

from engine import backend


@pytest.fixture(scope="session")
def astronaut64():
    from engine.io import image

    return image.preprocess(image.load_image(image.sample_path("astronaut"), size=64))


def pytest_report_header(config):
    reason = backend.gpu_unavailable_reason()
    return "GPU: " + ("available" if reason is None else f"not available ({reason}); GPU tests are skipped")


def rng(seed=0):
    return np.random.default_rng(seed)
