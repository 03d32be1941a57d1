"""Get the Docusaurus documentation corpus that bench/ and some tests read.

The corpus is the `website/docs/` folder of facebook/docusaurus at one pinned commit (the
documentation is CC BY 4.0; provenance in the SOURCE.md written next to it). On the project's
machines it is already at `../shared/corpora/docusaurus-docs`: then nothing is fetched. A fresh
clone elsewhere fetches it with git (network needed; one commit, and only that folder's files):

    python scripts/fetch_corpus.py [--dest ../shared/corpora/docusaurus-docs] [--dry-run]

`--dry-run` prints the git commands without running them. Only the pages (`.md`, `.mdx`) and
the sidebar category files are kept, as in the shared copy. Standard library and git only.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = ROOT.parent / "shared" / "corpora" / "docusaurus-docs"

REPOSITORY = "https://github.com/facebook/docusaurus.git"
COMMIT = "d5509e329d090ca3ab1da94d41834ddd51f11937"
SOURCE_FOLDER = "website/docs"
KEPT_SUFFIXES = (".md", ".mdx")
KEPT_NAMES = ("_category_.yml", "_category_.yaml", "_category_.json")


def source_note(repository: str, commit: str) -> str:
    """The SOURCE.md written next to a fetched corpus: where it comes from, and its licence."""
    return f"""# Docusaurus documentation corpus

Fetched by scripts/fetch_corpus.py.

- Repository: {repository}
- Folder: `{SOURCE_FOLDER}/`, copied with its relative paths into `docs/` (pages and
  `_category_` files only)
- Commit: `{commit}`
- Licence: the documentation is Creative Commons Attribution 4.0 International (CC BY 4.0),
  see `LICENSE-docs` in the repository.
"""


def corpus_present(dest: Path) -> bool:
    """Whether a corpus is already there (a `docs/` folder holding at least one page)."""
    docs = dest / "docs"
    return docs.is_dir() and any(path.suffix in KEPT_SUFFIXES for path in docs.rglob("*"))


def fetch_commands(checkout: Path, repository: str = REPOSITORY, commit: str = COMMIT) -> list[list[str]]:
    """The git commands that check out only SOURCE_FOLDER of `commit` into `checkout`."""
    git = ["git", "-C", str(checkout)]
    return [
        ["git", "init", "--quiet", str(checkout)],
        [*git, "remote", "add", "origin", repository],
        [*git, "sparse-checkout", "set", "--no-cone", f"/{SOURCE_FOLDER}/"],
        # One commit, and (a partial clone) only the files the sparse checkout needs.
        [*git, "fetch", "--quiet", "--depth", "1", "--filter=blob:none", "origin", commit],
        [*git, "checkout", "--quiet", "FETCH_HEAD"],
    ]


def copy_docs(source: Path, dest: Path) -> int:
    """Copy the pages and category files of `source` into `dest`/docs; returns how many."""
    copied = 0
    for path in sorted(source.rglob("*")):
        if path.is_file() and (path.suffix in KEPT_SUFFIXES or path.name in KEPT_NAMES):
            target = dest / "docs" / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += 1
    return copied


def fetch(dest: Path, repository: str = REPOSITORY, commit: str = COMMIT) -> int:
    """Fetch the corpus into `dest` (which must not hold one yet); returns the number of files."""
    with tempfile.TemporaryDirectory(prefix="docusaurus-corpus-") as scratch:
        checkout = Path(scratch) / "checkout"
        for command in fetch_commands(checkout, repository, commit):
            subprocess.run(command, check=True)
        staging = Path(scratch) / "corpus"
        copied = copy_docs(checkout / SOURCE_FOLDER, staging)
        if not copied:
            raise RuntimeError(f"{repository}@{commit} has no pages under {SOURCE_FOLDER}/")
        (staging / "SOURCE.md").write_text(source_note(repository, commit), encoding="utf-8")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)  # a half-written earlier attempt (corpus_present said no)
        shutil.copytree(staging, dest)  # complete, or not there at all
    return copied


def main(argv: list[str] | None = None) -> int:
    """Use the corpus at --dest if it is there, otherwise fetch it; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: %(default)s")
    parser.add_argument("--dry-run", action="store_true", help="print the git commands, run nothing")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()

    if corpus_present(dest):
        print(f"corpus present: {dest / 'docs'} (nothing fetched)")
        return 0
    if args.dry_run:
        print(f"corpus missing at {dest}; would run:")
        for command in fetch_commands(Path("<scratch>") / "checkout"):
            print("  " + shlex.join(command))
        print(f"then copy {SOURCE_FOLDER}/ (pages and _category_ files) to {dest / 'docs'}")
        return 0
    if shutil.which("git") is None:
        print("git is needed to fetch the corpus", file=sys.stderr)
        return 1
    try:
        copied = fetch(dest)
    except (subprocess.CalledProcessError, RuntimeError) as error:
        print(f"could not fetch the corpus: {error}", file=sys.stderr)
        return 1
    print(f"corpus fetched: {copied} files in {dest / 'docs'} ({REPOSITORY} at {COMMIT[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
