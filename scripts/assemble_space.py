"""Assemble the folder pushed to the Hugging Face Space (`make space`).

A Space is a git repository whose root holds the Space's README (front matter) and the
Dockerfile; everything the image needs must be inside it, as real files (Spaces do not follow
symbolic links). This copies, from the working tree:

    huggingface-spaces/README.md, huggingface-spaces/Dockerfile  -> the bundle's root
    app/, migrations/, docs/, wsgi.py, gunicorn.conf.py, requirements.txt

Caches (`__pycache__`, `*.pyc`) are left out; a symbolic link is copied as the file it points
to. requirements.txt must pin every package (`name==version`): the image installs exactly it.

    python scripts/assemble_space.py [--out dist/space] [--docs PATH]

`--docs` bundles another Docusaurus docs folder as `docs/` (the book a Space without Qdrant
Cloud answers from); by default it is this project's own guide.

Standard library only, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACE_DIR = ROOT / "huggingface-spaces"
DEFAULT_OUT = ROOT / "dist" / "space"

# (source relative to the project, destination relative to the bundle)
SPACE_FILES = [("huggingface-spaces/README.md", "README.md"), ("huggingface-spaces/Dockerfile", "Dockerfile")]
SERVICE_FILES = ["wsgi.py", "gunicorn.conf.py", "requirements.txt"]
SERVICE_DIRS = ["app", "migrations"]

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store", ".pytest_cache")

# `name==version`, optionally with extras and an environment marker.
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?$")


class BundleError(Exception):
    """The tree cannot be assembled into a Space bundle; the message says why."""


def unpinned_requirements(path: Path) -> list[str]:
    """The lines of a requirements file that do not pin one exact version."""
    bad = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#") and not _PINNED.match(line):
            bad.append(raw.strip())
    return bad


def assemble(out: Path, root: Path = ROOT, docs: Path | None = None) -> list[Path]:
    """Build the bundle in `out` (which must not exist or be empty); return its files, sorted.

    `docs` is the book to bundle as docs/ (default: the project's own docs/).
    """
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists and is not an empty folder")
    bad = unpinned_requirements(root / "requirements.txt")
    if bad:
        raise BundleError("requirements.txt must pin every package with ==; not pinned: " + ", ".join(bad))

    out.mkdir(parents=True, exist_ok=True)
    for source, target in SPACE_FILES:
        shutil.copy2(_existing(root / source), out / target)
    for name in SERVICE_FILES:
        shutil.copy2(_existing(root / name), out / name)
    for name in SERVICE_DIRS:
        # symlinks=False: a link is copied as what it points to (Spaces would drop the link).
        shutil.copytree(_existing(root / name), out / name, symlinks=False, ignore=IGNORED)
    book = _existing(docs or root / "docs")
    if not book.is_dir():
        raise BundleError(f"{book} is not a folder")
    shutil.copytree(book, out / "docs", symlinks=False, ignore=IGNORED)

    files = sorted(p for p in out.rglob("*") if not p.is_dir())
    links = [p for p in out.rglob("*") if p.is_symlink()]
    if links:  # cannot happen with symlinks=False; checked because the Space would break
        raise BundleError(f"symbolic links in the bundle: {links}")
    return files


def _existing(path: Path) -> Path:
    if not path.exists():
        raise BundleError(f"{path} is missing")
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: assemble, replacing a previous bundle under dist/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder (default: dist/space)")
    parser.add_argument("--docs", type=Path, default=None, help="the book's docs folder (default: ./docs)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    dist = (ROOT / "dist").resolve()
    if out.exists() and out.is_relative_to(dist) and out != dist:
        shutil.rmtree(out)  # only ever a previous bundle of ours, under dist/
    try:
        files = assemble(out, docs=args.docs.resolve() if args.docs else None)
    except BundleError as exc:
        print(f"make space: {exc}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in files)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"Space bundle: {shown}/ ({len(files)} files, {size / 1024:.0f} KiB)")
    print("Push it to the Space: see docs/deployment/hugging-face-spaces.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
