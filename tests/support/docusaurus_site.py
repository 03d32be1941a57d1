"""A real Docusaurus book for the widget's browser tests: the `classic` template (pinned), one
`scripts` line in docusaurus.config.js, a few pages with headings (and one with hostile HTML in its
text and code), `npm run build` — cached outside the checkout, keyed by what goes into the build.

The widget's script is built as a placeholder origin (WIDGET_PLACEHOLDER) and rewritten to the
service under test when the static server sends an HTML page: the service's port is only known at
test time, and a port baked into the build would either invalidate the cache on every run or need
a port reserved across runs. The rewrite touches only the script tag's origin; nothing else of the
build changes.

    python -m tests.support.docusaurus_site   # build (or reuse) the site, print its folder
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

CREATE_DOCUSAURUS = "3.10.2"  # npx create-docusaurus@<this>; the template's own deps are pinned by it
WEBPACK = "5.102.1"  # newer webpack breaks the build's progress plugin offline (measured here)
AXE_CORE = "4.11.0"
WIDGET_PLACEHOLDER = "http://widget-service.invalid"
CACHE_ROOT = Path(os.environ.get("DOCUSAURUS_SITE_CACHE", Path.home() / ".cache" / "docusaurus-book-chat"))

CONFIG_LINE = f"  scripts: [{{src: '{WIDGET_PLACEHOLDER}/widget.js', async: true}}],\n"

HOSTILE = "<img src=x onerror=alert(1)>"
PAGES = {
    "robot-arms.md": """---
sidebar_position: 2
---

# Robot arms

Robot arms move a tool along a path planned in joint space.

## Inverse kinematics

Inverse kinematics turns a target pose of the gripper into joint angles. The solver iterates with
the Jacobian until the error is below a tolerance.

## Grippers and end effectors

A parallel gripper closes two fingers; a suction cup holds flat parts. The end effector is the
last link of the arm.
""",
    "sensor-fusion.md": """---
sidebar_position: 3
---

# Sensor fusion

Sensor fusion combines an IMU and wheel odometry into one pose estimate.

## Kalman filter

The Kalman filter predicts the state, then corrects it with each measurement weighted by its
covariance. Run it with `ros2 run robot_localization ekf_node`.

```bash
ros2 run robot_localization ekf_node --ros-args -p frequency:=30.0
```

## Calibration

Calibrate the IMU before fusing: record its bias at rest for ten seconds.
""",
    "hostile-page.md": f"""---
sidebar_position: 4
---

# Escaping untrusted text

A page whose text quotes markup a reader must see as text, never run: `{HOSTILE}` and
`<script>alert(1)</script>`.

## Markup in code

```html
{HOSTILE}
<script>alert(1)</script>
<a href="javascript:alert(1)">x</a>
```

The escaping rules say a chat answer quotes such markup inside code only.
""",
}


def _key() -> str:
    recipe = json.dumps(
        {
            "create": CREATE_DOCUSAURUS,
            "webpack": WEBPACK,
            "axe": AXE_CORE,
            "line": CONFIG_LINE,
            "pages": PAGES,
            "node": _node_major(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _node_major() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.split(
            "."
        )[0]
    except (OSError, subprocess.CalledProcessError):
        return "none"


def missing_tools() -> str | None:
    """Why the site can't be built here, or None."""
    for tool in ("node", "npm", "npx"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Node 20 and npm build the test's Docusaurus site)"
    return None


def _run(cmd: list[str], cwd: Path, log) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    env = {
        **os.environ,
        "CI": "true",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
        "npm_config_update_notifier": "false",
    }
    subprocess.run(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, stdin=subprocess.DEVNULL
    )


def site_dir() -> Path:
    """The cached site's folder (site/build, site/docs, site/node_modules/axe-core), built if missing."""
    final = CACHE_ROOT / f"site-{_key()}"
    if (final / "DONE").exists():
        return final
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    work = CACHE_ROOT / f"building-{_key()}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.perf_counter()
    with (work / "build.log").open("w") as log:
        try:
            _run(
                [
                    "npx",
                    "--yes",
                    f"create-docusaurus@{CREATE_DOCUSAURUS}",
                    "site",
                    "classic",
                    "--javascript",
                    "--skip-install",
                ],
                work,
                log,
            )
            site = work / "site"
            package = json.loads((site / "package.json").read_text())
            package["overrides"] = {"webpack": WEBPACK}
            (site / "package.json").write_text(json.dumps(package, indent=2) + "\n")
            config = site / "docusaurus.config.js"
            text = config.read_text()
            anchor = "  presets: ["
            assert anchor in text, "the classic template's config changed shape"
            config.write_text(text.replace(anchor, CONFIG_LINE + anchor, 1))
            for name, body in PAGES.items():
                (site / "docs" / name).write_text(body)
            _run(["npm", "install", "--no-audit", "--no-fund"], site, log)
            _run(
                ["npm", "install", "--no-save", "--no-audit", "--no-fund", f"axe-core@{AXE_CORE}"], site, log
            )
            _run(["npm", "run", "build"], site, log)
        except (subprocess.CalledProcessError, OSError):
            log.flush()
            raise RuntimeError(f"building the Docusaurus site failed; see {work / 'build.log'}") from None
    (work / "DONE").write_text(f"built in {time.perf_counter() - started:.0f} s\n")
    try:
        work.rename(final)
    except OSError:  # another process won the race
        shutil.rmtree(work, ignore_errors=True)
    return final


class _Handler(http.server.SimpleHTTPRequestHandler):
    widget_origin = WIDGET_PLACEHOLDER

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not path.endswith(".html") or not os.path.exists(path):
            return super().send_head()
        body = Path(path).read_bytes().replace(WIDGET_PLACEHOLDER.encode(), self.widget_origin.encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        import io

        return io.BytesIO(body)


class StaticSite:
    """The built site on 127.0.0.1:<free port>, its pages pointing their widget at `widget_origin`."""

    def __init__(self, build: Path, widget_origin: str = WIDGET_PLACEHOLDER) -> None:
        handler = type("Handler", (_Handler,), {"widget_origin": widget_origin})
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(build))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_widget_origin(self, origin: str) -> None:
        self.server.RequestHandlerClass.func.widget_origin = origin  # type: ignore[attr-defined]  # a partial's handler class

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    t = time.perf_counter()
    folder = site_dir()
    print(folder, f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(folder)
