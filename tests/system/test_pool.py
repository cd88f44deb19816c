"""OCRPool under faults: a worker killed mid-batch loses no image, an image that kills its worker twice is an
error result, and a pool created at a script's top level says to add the ``__main__`` guard."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerKiller(np.ndarray):
    """An image array whose unpickling ends the process that receives it (exit code 3): a real worker death,
    always in the worker that takes this image."""

    def __reduce_ex__(self, protocol):
        return os._exit, (3,)


@pytest.mark.slow
def test_killed_worker_loses_no_image(exported_dir, known_image, demo_images):
    from ocrforge import OCR
    from ocrforge.pool import OCRPool, WorkerDiedError

    images = [known_image[0], *demo_images] * 2
    single = [OCR(exported_dir).ocr(image) for image in images]
    with OCRPool(exported_dir, workers=2) as pool:
        outcomes = pool.imap(images)
        first = next(outcomes)
        os.kill(pool.pids[0], signal.SIGKILL)  # a real worker, killed while the next images are in flight
        assert [r.to_json() for r in [first, *outcomes]] == single
        assert pool.restarts == 1

        killer = np.zeros((8, 8, 3), np.uint8).view(WorkerKiller)
        outcomes = list(pool.imap(images[:3] + [killer] + images[3:], errors="return"))
        assert pool.restarts == 3  # the killer among others, then the killer alone
        assert [r.to_json() for r in outcomes[:3] + outcomes[4:]] == single
        assert isinstance(outcomes[3], WorkerDiedError)
        assert str(outcomes[3]) == (
            "an array image (8, 8, 3) was not read: the worker process reading it died twice (exit code 3; then "
            "alone: exit code 3); out of memory, or something in the image crashes the decoder or the models")
        with pytest.raises(WorkerDiedError):  # errors="raise": raised in its turn
            pool.read_many([images[0], killer])


@pytest.mark.slow
def test_worker_killed_while_idle_is_replaced(exported_dir, known_image):
    from ocrforge import OCR
    from ocrforge.pool import OCRPool

    with OCRPool(exported_dir, workers=2) as pool:
        victim = pool.pids[0]
        os.kill(victim, signal.SIGKILL)
        assert [r.to_json() for r in pool.read_many([known_image[0]] * 3)] == [OCR(exported_dir).ocr(known_image[0])] * 3
        assert victim not in pool.pids


@pytest.mark.slow
def test_pool_at_script_top_level_names_the_main_guard(exported_dir, tmp_path):
    script = tmp_path / "read_all.py"
    script.write_text(textwrap.dedent("""
        import sys

        from ocrforge.pool import OCRPool

        pool = OCRPool(sys.argv[1], workers=1)  # no `if __name__ == "__main__":`
        print("read", pool.read_many([]))
    """))
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, str(script), str(exported_dir)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 1 and "read" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"RuntimeError: the OCRPool workers died while starting (the models in {exported_dir} load fine in this "
        f"process). The pool is created while {script} runs its top-level code: each spawned worker imports that "
        f"file again and so tries to start a pool of its own, which Python refuses. Create the pool under "
        f"`if __name__ == \"__main__\":` (or in a function called from there).")
