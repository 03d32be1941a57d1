"""An INSTANCE_PATH the service cannot write (a root-owned folder in a container) stops gunicorn
and the flask commands with one line naming it, like any other configuration error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.support.service import GUNICORN, ROOT, free_port, service_env

pytestmark = pytest.mark.e2e


def as_a_user_who_cannot_write(command: list[str]) -> list[str]:
    # root writes anywhere; without these capabilities it obeys the folder's permission bits.
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run as root without CAP_DAC_OVERRIDE")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]


@pytest.mark.parametrize(
    "command", [GUNICORN, [sys.executable, "-m", "flask", "ingest"]], ids=["gunicorn", "flask"]
)
@pytest.mark.parametrize("inside", [False, True], ids=["the-folder", "a-new-subfolder"])
def test_an_unwritable_instance_path_stops_start_up_with_one_line(tmp_path, command, inside):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        os.chown(locked, 65534, 65534)  # owned by nobody, 755: not writable for anyone else
    locked.chmod(0o555 if os.geteuid() != 0 else 0o755)
    instance = locked / "instance" if inside else locked
    env = service_env(tmp_path, INSTANCE_PATH=str(instance), PORT=str(free_port()), FLASK_APP="wsgi")
    result = subprocess.run(
        as_a_user_who_cannot_write(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "INSTANCE_PATH" in lines[0] and str(instance) in lines[0]
