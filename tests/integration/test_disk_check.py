"""The disk check on real filesystems: a writable folder, a read-only mount, a nearly full one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.services.health import check_disk


def test_a_writable_folder_with_room_is_up_and_keeps_no_probe_file(tmp_path):
    assert check_disk(tmp_path) == {"state": "up"}
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Mount a tmpfs with the given options (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"mount{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_read_only_folder_is_down_with_erofs(mount_tmpfs):
    assert check_disk(mount_tmpfs("ro,size=8m")) == {"state": "down", "error": "EROFS"}


def test_a_folder_with_almost_no_room_is_down_before_it_is_full(mount_tmpfs):
    # 2 MB free: a 4 kB probe still fits, but SQLite's next journal may not.
    assert check_disk(mount_tmpfs("size=2m")) == {"state": "down", "error": "ENOSPC"}


def test_a_full_folder_is_down_with_enospc(mount_tmpfs):
    folder = mount_tmpfs("size=8m")
    with open(folder / "filler", "wb") as handle:
        with pytest.raises(OSError):
            while True:
                handle.write(b"x" * 65536)
                handle.flush()
    assert check_disk(folder) == {"state": "down", "error": "ENOSPC"}
