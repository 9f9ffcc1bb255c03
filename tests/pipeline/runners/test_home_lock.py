"""One run at a time per home: the second waits, says for whom, and each reports its own
run."""
import io
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipeline.runners import home_lock

REPO = Path(__file__).resolve().parents[2]


def test_a_second_holder_waits_and_names_the_first(tmp_path):
    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        from pipeline.runners import home_lock
        with home_lock.hold({str(tmp_path)!r}, sys.stdout):
            print("held", flush=True)
            while not os.path.exists({str(release)!r}):
                time.sleep(0.05)
        """)], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    out, acquired = io.StringIO(), threading.Event()

    def second():
        with home_lock.hold(str(tmp_path), out):
            acquired.set()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    assert not acquired.is_set()  # waits while the first holds it
    message = out.getvalue()
    assert f"pid {holder.pid} on {socket.gethostname()}, started" in message
    assert "waiting for it to finish" in message and str(tmp_path) in message
    release.touch()
    thread.join(timeout=30)
    assert acquired.is_set() and holder.wait(timeout=30) == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pipeline.runners import home_lock
        with home_lock.hold({str(tmp_path)!r}, sys.stdout):
            print("held", flush=True)
            time.sleep(600)
        """)], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    out = io.StringIO()
    with home_lock.hold(str(tmp_path), out):
        pass
    assert out.getvalue() == ""


@pytest.mark.slow
def test_two_runs_started_together_push_once_and_report_their_own_runs(tmp_path):
    """Both start at once on a new home: the second waits, then compares with what the
    first pushed (the same model, cached) instead of pushing a second version."""
    from tests.conftest import E2E_OVERRIDES
    from pipeline.data_source import write_demo_digits

    data = tmp_path / "data"
    write_demo_digits(str(data), classes=(0, 1, 2))
    sets = [a for o in E2E_OVERRIDES for a in ("--set", o)]
    cmd = [sys.executable, "-c", "import sys; from pipeline.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "run", "--home", str(tmp_path / "home"),
           "--data", str(data), *sets]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=1200)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    waited = [o for o in outputs if "waiting for it to finish" in o]
    assert len(waited) == 1
    first = outputs[1 - outputs.index(waited[0])]
    assert "pushed: version 1" in first
    assert "pushed: nothing new: this model is already version 1" in waited[0]
    assert sorted(v for v in os.listdir(tmp_path / "home" / "serving" / "image_classifier")
                  if v.isdigit()) == ["1"]
    run_ids = [re.search(r"^run (\S+) finished", o, re.M).group(1) for o in outputs]
    assert run_ids[0] != run_ids[1]
