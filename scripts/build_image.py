"""Build the Space image (`make image`) with docker or podman, whichever has a working engine.

    python scripts/build_image.py [--context dist/space] [--tag docusaurus-book-chat:latest]
                                  [--base-image IMAGE] [--engine docker|podman] [-- BUILD FLAGS...]

A docker client without a daemon behind it does not count: an engine works when `<engine> info`
succeeds. docker is tried first, then podman. podman builds in the Docker image format
(`--format docker`): its default OCI format has no HEALTHCHECK and would drop the image's.
`--base-image` sets the Dockerfile's BASE_IMAGE build argument (a mirror, an air-gapped registry);
flags after `--` go to the engine's `build` as they are (e.g. `-- --no-cache`).

Standard library only.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("docker", "podman")
DEFAULT_TAG = "docusaurus-book-chat:latest"


def working_engine(candidates: tuple[str, ...] = ENGINES) -> tuple[str | None, dict[str, str]]:
    """The first engine whose `info` succeeds, and why each one before it did not."""
    reasons: dict[str, str] = {}
    for engine in candidates:
        if shutil.which(engine) is None:
            reasons[engine] = "not installed"
            continue
        try:
            probe = subprocess.run([engine, "info"], check=False, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            reasons[engine] = "`info` did not answer within 60 s"
            continue
        if probe.returncode == 0:
            return engine, reasons
        lines = (probe.stderr or probe.stdout).strip().splitlines()
        reasons[engine] = lines[-1] if lines else f"`info` exited {probe.returncode}"
    return None, reasons


def build_command(
    engine: str, context: Path, tag: str, base_image: str | None = None, extra: list[str] | None = None
) -> list[str]:
    """The engine's build command line for the Space image."""
    command = [engine, "build"]
    if Path(engine).name == "podman":
        command += ["--format", "docker"]  # OCI images have no HEALTHCHECK
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    return [*command, *(extra or []), "--tag", tag, str(context)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, default=ROOT / "dist" / "space", help="the assembled bundle")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base-image", default=None, help="the BASE_IMAGE build argument")
    parser.add_argument("--engine", choices=ENGINES, default=None, help="default: the first that works")
    parser.add_argument("extra", nargs="*", help="after --: flags for the engine's build")
    args = parser.parse_args(argv)

    if not (args.context / "Dockerfile").is_file():
        print(f"{args.context}/Dockerfile is missing: run `make space` first", file=sys.stderr)
        return 2
    engine = args.engine
    if engine is None:
        engine, reasons = working_engine()
        if engine is None:
            print("no working container engine:", file=sys.stderr)
            for name, reason in reasons.items():
                print(f"  {name}: {reason}", file=sys.stderr)
            print(
                "see docs/deployment/hugging-face-spaces.md, 'Build and run the image locally'",
                file=sys.stderr,
            )
            return 2
        for name, reason in reasons.items():
            print(f"{name}: {reason}; using {engine}")
    command = build_command(engine, args.context, args.tag, args.base_image, args.extra)
    print("+ " + shlex.join(command), flush=True)
    code = subprocess.call(command)
    if code == 0:
        size = subprocess.run(
            [engine, "image", "inspect", "--format", "{{.Size}}", args.tag],
            check=False,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if size.isdigit():
            print(f"{args.tag}: {int(size) / 1e6:.0f} MB (uncompressed)")
    return code


if __name__ == "__main__":
    sys.exit(main())
