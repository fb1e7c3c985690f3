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


@pytest.fixture
def fifo_reader():
    """start(path, text=False) -> (thread, got): a daemon thread reading the FIFO ``path`` whole
    into ``got``. A reader whose writer never came is released at teardown, so no test leaves a
    thread blocked in open() (which would hold the interpreter at exit)."""
    import os
    import threading

    started = []

    def start(path, text=False):
        got = []
        t = threading.Thread(target=lambda: got.append(path.read_text() if text else path.read_bytes()),
                             daemon=True)
        t.start()
        started.append((t, path))
        return t, got

    yield start
    for t, path in started:
        if t.is_alive():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # the reader's open returns
            except OSError:
                pass
            t.join(5)
