"""The Space image, built and run for real: the bundle `make space` assembles, built by the
script `make image` runs, then run with podman as a Space (or `docker run`) runs it.

Runs once per `make test`: in the SQLite pass (skipped when TEST_DATABASE_URL is set: the
image's own database is SQLite under instance/, so the PostgreSQL pass would repeat it
unchanged), and only where podman works as root; otherwise skipped with the reason. podman is
configured by this test alone (CONTAINERS_CONF and CONTAINERS_STORAGE_CONF in a cache folder
outside the repository), so it neither uses nor changes the machine's own podman storage.

The base image is the Dockerfile's default when it can be pulled. Where it cannot (no Docker
Hub here), a stand-in is made once with debootstrap and kept in that storage under a tag keyed
by its recipe: Debian bookworm's Python 3.11 with pip, plus the host's locally added CA
certificates so that pip inside the build trusts the same TLS as the host. The stand-in and
those certificates exist only here, never in dist/space. Everything else this test creates (the
image and its intermediate layers, containers, volumes) it removes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from filelock import FileLock

from tests.conftest import ROOT, TEST_DATABASE_URL
from tests.support.service import widget_chat

pytestmark = [pytest.mark.e2e, pytest.mark.image]

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "docusaurus-book-chat/space-image"
APP = "/home/user/app"
INSTANCE = f"{APP}/instance"
UID = 1000
STOP_TIMEOUT = 10  # seconds: Docker's and podman's default wait between SIGTERM and SIGKILL
LEAN_LIMIT = 5_000_000  # bytes, uncompressed: everything above the dependencies' layer
STAND_IN = "localhost/space-test-base"
STAND_IN_RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3.11", "python3-pip", "python3-venv", "ca-certificates"],
    "env": ["PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
}
LOCAL_CA_CERTIFICATES = Path("/usr/local/share/ca-certificates")
INSTALL_HINT = "apt-get install podman buildah debootstrap runc uidmap"


# --- podman, configured for this test ----------------------------------------------------------


class Podman:
    """The podman command line with this test's own configuration and storage."""

    def __init__(self, cache: Path) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        # overlay is fast and shares layers; on a file system that is itself an overlay (inside a
        # container) it cannot mount, and vfs (a full copy per layer, slow and large) is the way.
        fs_type = subprocess.run(
            ["stat", "--file-system", "--format=%T", str(cache)], capture_output=True, text=True
        ).stdout
        driver = "vfs" if "overlay" in fs_type else "overlay"
        storage = cache / f"storage-{driver}"
        runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""  # crun refuses hybrid cgroups
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(
                _write(
                    cache / f"storage-{driver}.conf",
                    f'[storage]\ndriver = "{driver}"\n'
                    f'graphroot = "{storage}/graph"\nrunroot = "{storage}/run"\n',
                )
            ),
            # Without CAP_SYS_RESOURCE podman's default ulimits can exceed the hard limits.
            "CONTAINERS_CONF": str(
                _write(
                    cache / "containers.conf",
                    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]\n'
                    f"[engine]\n{runtime}",
                )
            ),
        }

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check:
            assert result.returncode == 0, f"podman {' '.join(args)}: {result.returncode}\n{result.stderr}"
        return result

    def inspect(self, name: str) -> dict:
        return json.loads(self("inspect", name).stdout)[0]


def _write(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


@pytest.fixture(scope="module")
def podman() -> Podman:
    if TEST_DATABASE_URL:
        pytest.skip(
            "runs once, in the SQLite pass of `make test`: the image's own default database is "
            "SQLite under instance/, so the PostgreSQL pass would repeat it unchanged"
        )
    if shutil.which("podman") is None:
        pytest.skip(f"podman is not installed ({INSTALL_HINT})")
    if os.geteuid() != 0:
        pytest.skip("runs podman as root (rootless podman needs subordinate UIDs and fuse-overlayfs)")
    engine = Podman(CACHE)
    info = engine("info", check=False, timeout=60)
    if info.returncode != 0:
        pytest.skip(f"podman does not work here: {info.stderr.strip().splitlines()[-1:]}")
    return engine


# --- the base image ----------------------------------------------------------------------------


def _default_base(bundle: Path) -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", (bundle / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile declares ARG BASE_IMAGE=<default>"
    return match.group(1)


def base_image(podman: Podman, bundle: Path) -> str:
    """The official base if it is here or can be pulled, else the stand-in (made once)."""
    official = _default_base(bundle)
    if podman("image", "exists", official, check=False).returncode == 0:
        return official
    if podman("pull", "--quiet", official, check=False, timeout=600).returncode == 0:
        return official
    return stand_in(podman)


def stand_in(podman: Podman) -> str:
    """Debian's Python 3.11 with pip and the host's added CA certificates, imported once."""
    certificates = sorted(LOCAL_CA_CERTIFICATES.rglob("*.crt")) if LOCAL_CA_CERTIFICATES.is_dir() else []
    recipe = {
        **STAND_IN_RECIPE,
        "certificates": [hashlib.sha256(c.read_bytes()).hexdigest() for c in certificates],
    }
    tag = f"{STAND_IN}:{hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]}"
    with FileLock(str(CACHE / "stand-in.lock")):  # another run may be making it right now
        if podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        if shutil.which("debootstrap") is None:
            pytest.skip(f"the base image cannot be pulled and debootstrap is missing ({INSTALL_HINT})")
        rootfs = Path(tempfile.mkdtemp(prefix="stand-in-", dir=CACHE))
        try:
            made = subprocess.run(
                [
                    "debootstrap",
                    f"--variant={recipe['variant']}",
                    f"--include={','.join(recipe['include'])}",
                    recipe["suite"],
                    str(rootfs),
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=1200,
            )
            assert made.returncode == 0, f"debootstrap failed:\n{made.stdout[-3000:]}{made.stderr[-3000:]}"
            # What the official image has and the Dockerfile relies on: `python` and `pip` on PATH,
            # and pip allowed to install (Debian marks its Python as externally managed).
            for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
                (rootfs / "usr/local/bin" / name).symlink_to(target)
            for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            for certificate in certificates:
                shutil.copy2(certificate, rootfs / "usr/local/share/ca-certificates" / certificate.name)
            subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(rootfs / leftover, ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            changes = [arg for env in recipe["env"] for arg in ("--change", f"ENV {env}")]
            imported = subprocess.run(
                ["podman", "import", *changes, "-", tag],
                stdin=tar.stdout,
                env=podman.env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            tar.stdout.close()
            assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        # Stand-ins of an older recipe (other certificates) are no longer used.
        for old in podman("images", "--format", "{{.Repository}}:{{.Tag}}", STAND_IN).stdout.split():
            if old != tag:
                podman("rmi", old, check=False)
        return tag


# --- the image ---------------------------------------------------------------------------------


@dataclass
class Image:
    tag: str
    base: str
    build_seconds: float
    bundle: Path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle, assembled by the script `make space` runs."""
    out = tmp_path_factory.mktemp("space") / "bundle"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "assemble_space.py"), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def image(podman: Podman, bundle: Path) -> Iterator[Image]:
    """The image, built as `make image` builds it; removed afterwards with every layer it made."""
    base = base_image(podman, bundle)
    tag = f"localhost/space-image-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    build = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_image.py"),
            "--engine=podman",
            f"--context={bundle}",
            f"--tag={tag}",
            f"--base-image={base}",
            "--",
            "--no-cache",  # every layer is this run's own, so removing them all is safe
            "--force-rm",
        ],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = time.monotonic() - started
    layers = re.findall(r"^--> ([0-9a-f]{12,64})$", build.stdout, re.MULTILINE)
    try:
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        # No warnings: a dropped HEALTHCHECK (OCI format) or an unused build argument says so here.
        assert not re.findall(r"(?im)^.*\b(WARN|warning)\b.*$", build.stderr), build.stderr
        yield Image(tag, base, seconds, bundle)
    finally:
        podman("rmi", "--force", tag, *reversed(layers), check=False)


# --- running it --------------------------------------------------------------------------------


@dataclass
class Container:
    name: str
    url: str


@contextmanager
def container(podman: Podman, image: Image, *flags: str) -> Iterator[Container]:
    """A created (not started) container of the image, published on a free local port; removed
    afterwards with its volumes."""
    name = f"space-image-test-{uuid.uuid4().hex[:12]}"
    port = _free_port()
    podman("create", "--name", name, "--publish", f"127.0.0.1:{port}:7860", *flags, image.tag)
    try:
        yield Container(name, f"http://127.0.0.1:{port}")
    finally:
        found = podman("inspect", name, check=False)
        mounts = json.loads(found.stdout)[0].get("Mounts", []) if found.returncode == 0 else []
        podman("rm", "--force", "--volumes", name, check=False)
        for volume in [m["Name"] for m in mounts if m.get("Type") == "volume"]:
            podman("volume", "rm", volume, check=False)  # in use by another container: removed with it


def start(podman: Podman, box: Container, timeout: float = 90) -> float:
    """Start the container; seconds until /api/health said 200 five times in a row (every
    worker ready)."""
    started = time.monotonic()
    podman("start", box.name)
    first_200, streak, statuses = None, 0, []
    while time.monotonic() - started < timeout and streak < 5:
        if podman.inspect(box.name)["State"]["Status"] != "running":
            raise AssertionError(f"the container stopped:\n{logs(podman, box)}")
        try:
            response = requests.get(f"{box.url}/api/health", timeout=5)
            statuses.append(response.json()["status"])
            if response.status_code == 200:
                first_200 = first_200 or time.monotonic() - started
                streak += 1
            else:
                streak = 0
        except requests.ConnectionError:
            streak = 0
        time.sleep(0.05)
    assert streak >= 5, f"not healthy in {timeout}s: {statuses[-5:]}\n{logs(podman, box)}"
    return first_200


def stop(podman: Podman, box: Container) -> int:
    """`podman stop` with the default timeout; the container's exit code (137 if it was killed)."""
    podman("stop", "--time", str(STOP_TIMEOUT), box.name, timeout=STOP_TIMEOUT + 30)
    state = podman.inspect(box.name)["State"]
    assert state["Status"] == "exited", state
    return state["ExitCode"]


def logs(podman: Podman, box: Container) -> str:
    result = podman("logs", box.name, check=False)
    return result.stdout + result.stderr


def written_outside_instance(podman: Podman, box: Container) -> list[str]:
    """What `podman diff` shows changed outside the instance folder, leaving out the folders
    that merely contain it and /etc (podman adds /etc/mtab to every container)."""
    changes = [line.split(" ", 1) for line in podman("diff", box.name).stdout.splitlines() if line.strip()]
    around = {"/etc", *(str(p) for p in Path(INSTANCE).parents)}
    return [
        f"{kind} {path}"
        for kind, path in changes
        if not (path == INSTANCE or path.startswith(INSTANCE + "/")) and not (kind == "C" and path in around)
    ]


def startup_index_results(log: str) -> list[dict]:
    """The summaries of the start-up index task, one per worker."""
    results = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                line = json.loads(line).get("message", "")
            except ValueError:
                continue
        if "start-up: index the book -> " in line:
            results.append(ast.literal_eval(line.split("start-up: index the book -> ", 1)[1]))
    return results


def request_lines(log: str) -> list[tuple[str, int]]:
    """(route, status) of every request line in the log."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "request":
                found.append((record["route"], record["status"]))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uids(podman: Podman, box: Container) -> set[int]:
    """Real, effective, saved and file-system UIDs of every process in the container (podman as
    root maps no user namespace: a UID inside is the same UID outside)."""
    pids = podman("top", box.name, "hpid").stdout.split()[1:]
    assert pids, "no processes"
    uids: set[int] = set()
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        uids.update(int(v) for v in re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split())
    return uids


# --- the tests ---------------------------------------------------------------------------------


def test_the_image_is_lean_holds_no_index_and_follows_the_space_pattern(podman, image):
    inspected = podman.inspect(image.tag)
    config = inspected["Config"]
    assert config["User"] in ("1000", "user")
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["HOME"] == "/home/user" and env["INSTANCE_PATH"] == INSTANCE
    assert "7860/tcp" in config["ExposedPorts"]
    assert config["Cmd"][0] == "gunicorn"  # exec form: gunicorn is PID 1 and gets SIGTERM
    assert "/api/health/live" in " ".join(inspected["Healthcheck"]["Test"])  # kept: Docker format

    history = json.loads(podman("history", "--format", "json", image.tag).stdout)[::-1]  # oldest first
    install = next(i for i, layer in enumerate(history) if "pip install" in layer["CreatedBy"])
    above = sum(layer["size"] for layer in history[install + 1 :])
    assert above <= LEAN_LIMIT, [(layer["CreatedBy"][:60], layer["size"]) for layer in history[install + 1 :]]
    listing = podman(
        "run",
        "--rm",
        image.tag,
        "python",
        "-c",
        "import os; print(sorted(os.listdir(os.environ['INSTANCE_PATH'])))",
    ).stdout.strip()
    assert listing == "[]", "no index, database or lock file in the image: start-up makes them"

    sizes = {
        "image_mb": inspected["Size"] / 1e6,
        "base_mb": podman.inspect(image.base)["Size"] / 1e6,
        "dependencies_mb": history[install]["size"] / 1e6,
        "above_dependencies_mb": above / 1e6,
        "build_s": image.build_seconds,
    }
    print(f"image {image.tag} on {image.base}: {json.dumps({k: round(v, 1) for k, v in sizes.items()})}")


def test_the_image_serves_as_uid_1000_probes_quietly_and_stops_cleanly(podman, image):
    with container(podman, image) as box:
        first_start = start(podman, box)  # no index yet: start-up builds it into instance/
        assert _uids(podman, box) == {UID}
        assert podman("healthcheck", "run", box.name, check=False).returncode == 0, logs(podman, box)
        events = widget_chat(box.url, {"message": "How do I deploy to Hugging Face Spaces?"})
        assert [events[0]["type"], events[-1]["type"]] == ["metadata", "done"]
        assert sum(e["type"] == "token" for e in events) > 3
        assert events[-1]["sources"] and all(
            (image.bundle / "docs" / s["file"]).is_file() for s in events[-1]["sources"]
        )
        assert stop(podman, box) == 0, logs(podman, box)
        log = logs(podman, box)
        assert log.count("database is up to date") == 1, "migrations run once, in gunicorn's master"
        assert sum(r["added"] for r in startup_index_results(log)) > 0, startup_index_results(log)
        # The HEALTHCHECK's probe and start()'s polling that answered 200 wrote no line (INFO is
        # the image's level); the 503s while starting did.
        lines = request_lines(log)
        assert ("/api/chat", 200) in lines
        assert not [line for line in lines if line[0].startswith("/api/health") and line[1] == 200], lines

        second_start = start(podman, box)  # the index is there now: checked, not rebuilt
        assert stop(podman, box) == 0, logs(podman, box)
        results = startup_index_results(logs(podman, box))[-2:]
        assert results, logs(podman, box)
        assert all((r["added"], r["updated"], r["removed"]) == (0, 0, 0) for r in results), results

        assert written_outside_instance(podman, box) == []
    print(f"cold start to health 200: first {first_start:.2f}s (builds the index), next {second_start:.2f}s")


def test_the_image_runs_on_a_read_only_root_with_a_volume_for_instance(podman, image):
    volume = f"space-image-test-{uuid.uuid4().hex[:12]}"
    # --read-only-tmpfs=false: no writable /tmp either, as with Docker's --read-only.
    flags = ["--read-only", "--read-only-tmpfs=false", "--volume", f"{volume}:{INSTANCE}"]
    with container(podman, image, *flags) as box:
        seconds = start(podman, box)
        events = widget_chat(box.url, {"message": "Which variables configure the service?"})
        assert events[-1]["type"] == "done" and events[-1]["sources"]
        assert stop(podman, box) == 0, logs(podman, box)
        log = logs(podman, box)
        assert "Traceback" not in log and "Read-only file system" not in log, log
        assert written_outside_instance(podman, box) == []
        assert podman.inspect(box.name)["Mounts"][0]["Destination"] == INSTANCE

        # The next push, with a changed book, on the same volume (the Space's /data): start-up
        # brings the index there up to date, and every worker answers from the new version.
        book = Path(tempfile.mkdtemp(prefix="space-image-book-", dir="/var/tmp"))
        try:
            os.chmod(book, 0o755)  # UID 1000 reads it
            shutil.copytree(image.bundle / "docs", book / "docs")
            guide = book / "docs" / "faq.md"
            quokkas = "\n\n## Where do quokkas live?\n\nQuokkas live on Rottnest Island.\n"
            guide.write_text(guide.read_text() + quokkas)
            with container(podman, image, *flags, "--volume", f"{book / 'docs'}:{APP}/docs:ro") as pushed:
                start(podman, pushed)
                answers = []
                for _ in range(5):  # a worker that waited on the start-up lock follows within a second
                    events = widget_chat(pushed.url, {"message": "Where do quokkas live?"})
                    answers.append("".join(e.get("content", "") for e in events if e["type"] == "token"))
                    if "Rottnest" in answers[-1]:
                        break
                    time.sleep(0.5)
                assert "Rottnest" in answers[-1], answers
                assert stop(podman, pushed) == 0, logs(podman, pushed)
                results = startup_index_results(logs(podman, pushed))
                assert sum(r["updated"] + r["added"] for r in results) > 0, results
        finally:
            shutil.rmtree(book, ignore_errors=True)
    print(f"read-only root: health 200 after {seconds:.2f}s")
