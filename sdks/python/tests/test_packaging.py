"""The package installs offline with its in-tree build backend and leaves the checkout as it was.

Each test makes a fresh venv with ``python -m venv`` and runs that venv's pip on the checkout
itself, exactly as a user would (``pip install --no-index ./sdks/python``): nothing is copied,
so a build that wrote ``build/``, ``*.egg-info`` or any other file into ``sdks/python`` fails.
pip runs without PYTHONDONTWRITEBYTECODE, as on a user's machine, so a stray bytecode cache
counts too; only the installed package is then run with it set, because the SDK writing its
own ``__pycache__`` when imported from ``src/`` is Python at work, not the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SDK_DIR

INSTALL_TIMEOUT = 300  # seconds; a venv and a pure-Python wheel, on a loaded machine
PROBE = """
import json, sentinel_agent
from importlib import metadata
meta = metadata.metadata("sentinel-agent")
print(json.dumps({"file": sentinel_agent.__file__, "version": meta["Version"],
                  "requires": meta.get_all("Requires-Dist"), "extras": meta.get_all("Provides-Extra"),
                  "scripts": [e.name for e in metadata.entry_points(group="console_scripts")]}))
"""


def listing(root: Path) -> set[str]:
    """Every file and directory under ``root``, bytecode caches included."""
    found = set()
    for directory, subdirectories, names in os.walk(root):
        for name in subdirectories + names:
            found.add((Path(directory) / name).relative_to(root).as_posix())
    return found


def run(argv: list, env: dict[str, str], cwd: Path = REPO) -> str:
    done = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def fresh_venv(path: Path) -> Path:
    """A venv with pip from the interpreter's ensurepip (Debian: the python3-venv package)."""
    run([sys.executable, "-m", "venv", path], user_env())
    return path / "bin"


def pip_install(bin_dir: Path, *what: str) -> None:
    run([bin_dir / "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         *what], user_env())


def probe(bin_dir: Path) -> dict:
    runtime = user_env(PYTHONDONTWRITEBYTECODE="1")
    found = json.loads(run([bin_dir / "python", "-c", PROBE], runtime, cwd=bin_dir))
    help_text = run([bin_dir / "sentinel-denylist-agent", "--help"], runtime, cwd=bin_dir)
    assert "--agent-id" in help_text and "--connect" in help_text, help_text
    return found


def assert_untouched(before: set[str]) -> None:
    after = listing(SDK_DIR)
    assert after == before, (f"the build left files in {SDK_DIR}: new {sorted(after - before)}, "
                             f"gone {sorted(before - after)}")


def test_pip_install_offline_into_a_venv_leaves_the_checkout_untouched(tmp_path):
    before = listing(SDK_DIR)
    bin_dir = fresh_venv(tmp_path / "venv")
    pip_install(bin_dir, "./sdks/python")
    assert_untouched(before)

    installed = probe(bin_dir)
    assert Path(installed["file"]).is_relative_to(tmp_path / "venv"), installed
    assert installed["version"] == "0.1.0"
    assert sorted(installed["extras"]) == ["msgpack", "test"]
    assert 'msgpack>=1.0; extra == "msgpack"' in installed["requires"], installed
    assert "sentinel-denylist-agent" in installed["scripts"]


def test_editable_install_runs_the_checkout_and_leaves_it_untouched(tmp_path):
    before = listing(SDK_DIR)
    bin_dir = fresh_venv(tmp_path / "venv")
    pip_install(bin_dir, "-e", "./sdks/python")
    assert_untouched(before)

    installed = probe(bin_dir)
    assert Path(installed["file"]) == SDK_DIR / "src" / "sentinel_agent" / "__init__.py", installed
    assert "sentinel-denylist-agent" in installed["scripts"]


def test_the_sdist_holds_everything_a_build_needs(tmp_path):
    before = listing(SDK_DIR)
    build_sdist = ("import sys; sys.path.insert(0, 'build_backend'); import sentinel_agent_build; "
                   f"print(sentinel_agent_build.build_sdist({str(tmp_path)!r}))")
    sdist = tmp_path / run([sys.executable, "-c", build_sdist], user_env(), cwd=SDK_DIR).strip()
    assert sdist.name == "sentinel_agent-0.1.0.tar.gz"
    bin_dir = fresh_venv(tmp_path / "venv")
    pip_install(bin_dir, sdist)
    assert_untouched(before)
    assert probe(bin_dir)["version"] == "0.1.0"
