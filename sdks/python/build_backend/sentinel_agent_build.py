"""The in-tree build backend of the ``sentinel-agent`` package (PEP 517, and PEP 660 for
``pip install -e``), written with the standard library only so that building works offline.

It owns turning pyproject.toml's ``[project]`` table, the single source of the metadata, into
core metadata, and writing the wheel, the editable wheel and the sdist straight into the
directory the frontend (pip) names. It writes nothing into the source tree: no ``build/``, no
``*.egg-info``. It does not resolve or install anything (pip's job), and it supports only the
``[project]`` keys this package uses: any other key stops the build with its name rather than
being dropped from the metadata.

Reading TOML needs ``tomllib`` (Python 3.11+); on 3.10 ``build-system.requires`` asks for
``tomli`` instead. The package itself runs on 3.10.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pyproject.toml's build-system.requires brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sentinel_agent"
WHEEL_TAG = "py3-none-any"
# What an sdist carries besides PKG-INFO: enough to build the wheel again from it.
SDIST_FILES = ("pyproject.toml", "README.md", "denylist.kdl")
SDIST_TREES = ("build_backend", "src")
SUPPORTED_KEYS = {
    "name", "version", "description", "readme", "requires-python", "license",
    "dependencies", "optional-dependencies", "scripts",
}
README_TYPES = {".md": "text/markdown", ".rst": "text/x-rst"}
ZIP_EPOCH = 315532800  # 1980-01-01, the earliest time a zip entry can carry


class BuildError(Exception):
    """pyproject.toml asks for something this backend cannot write; the message says what."""


@dataclass(frozen=True)
class Project:
    """The ``[project]`` table, checked, in the shape core metadata needs."""

    name: str
    version: str
    summary: str
    readme_text: str
    readme_type: str
    requires_python: str
    license_text: str
    dependencies: tuple[str, ...]
    extras: tuple[tuple[str, tuple[str, ...]], ...]
    scripts: tuple[tuple[str, str], ...]

    @property
    def stem(self) -> str:
        """``name-version`` as wheel and sdist file names spell it (``sentinel_agent-0.1.0``)."""
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}"

    @property
    def dist_info(self) -> str:
        return f"{self.stem}.dist-info"


# ---------------------------------------------------------------- pyproject.toml → Project

def load_project(root: Path = ROOT) -> Project:
    """Reads and checks ``[project]`` of ``root/pyproject.toml``."""
    with open(root / "pyproject.toml", "rb") as file:
        table = tomllib.load(file).get("project", {})
    unsupported = sorted(set(table) - SUPPORTED_KEYS)
    if unsupported:
        raise BuildError(f"pyproject.toml [project] uses {', '.join(unsupported)}, which "
                         f"build_backend/sentinel_agent_build.py does not write: add it there")
    readme_text, readme_type = _readme(root, table.get("readme"))
    extras, scripts = _table(table, "optional-dependencies"), _table(table, "scripts")
    return Project(
        name=_line(table, "name"),
        version=_line(table, "version"),
        summary=_line(table, "description", ""),
        readme_text=readme_text,
        readme_type=readme_type,
        requires_python=_line(table, "requires-python", ""),
        license_text=_license(table.get("license")),
        dependencies=tuple(_strings(table, "dependencies")),
        extras=tuple((_extra_name(extra), tuple(_strings(extras, extra))) for extra in extras),
        scripts=tuple((name, _line(scripts, name)) for name in scripts),
    )


def _line(table: dict, key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or "\n" in value:
        raise BuildError(f"pyproject.toml: `{key}` must be a one-line string")
    return value


def _table(table: dict, key: str) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise BuildError(f"pyproject.toml: `[project.{key}]` must be a table")
    return value


def _strings(table: dict, key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildError(f"pyproject.toml: `{key}` must be a list of requirement strings")
    return value


def _extra_name(extra: str) -> str:
    """PEP 685's normalised extra name."""
    return re.sub(r"[-_.]+", "-", extra).lower()


def _readme(root: Path, readme) -> tuple[str, str]:
    if readme is None:
        return "", ""
    if isinstance(readme, str):
        readme = {"file": readme}
    if not isinstance(readme, dict) or "file" not in readme:
        raise BuildError("pyproject.toml: `readme` must be a file name or a table with `file`")
    path = root / readme["file"]
    content_type = readme.get("content-type") or README_TYPES.get(path.suffix.lower(), "text/plain")
    return path.read_text(encoding="utf-8"), content_type


def _license(license_table) -> str:
    if license_table is None:
        return ""
    if not isinstance(license_table, dict) or set(license_table) != {"text"}:
        raise BuildError("pyproject.toml: only `license = { text = \"…\" }` is supported")
    return _line(license_table, "text")


# ---------------------------------------------------------------- Project → metadata files

def metadata(project: Project) -> str:
    """The core metadata (``METADATA`` in a wheel, ``PKG-INFO`` in an sdist), version 2.1."""
    lines = ["Metadata-Version: 2.1", f"Name: {project.name}", f"Version: {project.version}"]
    optional = [("Summary", project.summary), ("License", project.license_text),
                ("Requires-Python", project.requires_python)]
    lines += [f"{key}: {value}" for key, value in optional if value]
    lines += [f"Requires-Dist: {requirement}" for requirement in project.dependencies]
    for extra, requirements in project.extras:
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {_for_extra(requirement, extra)}" for requirement in requirements]
    if project.readme_type:
        lines.append(f"Description-Content-Type: {project.readme_type}")
    return "\n".join(lines) + "\n\n" + project.readme_text


def _for_extra(requirement: str, extra: str) -> str:
    """``msgpack>=1.0`` → ``msgpack>=1.0; extra == "msgpack"``, keeping an existing marker."""
    spec, _, marker = requirement.partition(";")
    condition = f'extra == "{extra}"'
    if marker.strip():
        condition = f"({marker.strip()}) and {condition}"
    return f"{spec.strip()}; {condition}"


def wheel_file() -> str:
    return (f"Wheel-Version: 1.0\nGenerator: sentinel_agent_build\n"
            f"Root-Is-Purelib: true\nTag: {WHEEL_TAG}\n")


def entry_points(project: Project) -> str:
    if not project.scripts:
        return ""
    return "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in project.scripts)


def dist_info_files(project: Project) -> list[tuple[str, bytes]]:
    """``*.dist-info`` entries but RECORD, as (archive path, content)."""
    files = [("METADATA", metadata(project)), ("WHEEL", wheel_file())]
    if project.scripts:
        files.append(("entry_points.txt", entry_points(project)))
    return [(f"{project.dist_info}/{name}", text.encode("utf-8")) for name, text in files]


# ---------------------------------------------------------------- the source files

def tree_files(root: Path, relative: str) -> list[tuple[str, Path]]:
    """Every file under ``root/relative`` but bytecode caches, sorted, with its path from root."""
    found = []
    for directory, subdirectories, names in os.walk(root / relative):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(names):
            if not name.endswith((".pyc", ".pyo")):
                path = Path(directory) / name
                found.append((path.relative_to(root).as_posix(), path))
    return found


def package_files(root: Path = ROOT) -> list[tuple[str, bytes]]:
    """The ``sentinel_agent`` package from ``src/``, as (path in the wheel, content)."""
    files = tree_files(root / "src", PACKAGE)
    if not files:
        raise BuildError(f"no package found at {root / 'src' / PACKAGE}")
    return [(name, path.read_bytes()) for name, path in files]


# ---------------------------------------------------------------- archives

def _epoch() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else 1980: never the clock."""
    return max(int(os.environ.get("SOURCE_DATE_EPOCH", ZIP_EPOCH)), ZIP_EPOCH)


def _record_line(name: str, content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(content)}\n"


def write_wheel(directory: str, project: Project, files: list[tuple[str, bytes]]) -> str:
    """Writes ``files`` plus the dist-info (RECORD last) as a wheel into ``directory``."""
    entries = files + dist_info_files(project)
    record_name = f"{project.dist_info}/RECORD"
    record = "".join(_record_line(name, content) for name, content in entries) + f"{record_name},,\n"
    entries.append((record_name, record.encode("utf-8")))
    stamp = time.gmtime(_epoch())[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    basename = f"{project.stem}-{WHEEL_TAG}.whl"
    _write_atomically(Path(directory) / basename, buffer.getvalue())
    return basename


def write_sdist(directory: str, project: Project, root: Path = ROOT) -> str:
    """Writes ``name-version.tar.gz``: PKG-INFO, pyproject.toml, the backend and ``src/``."""
    files = [(name, (root / name).read_bytes()) for name in SDIST_FILES]
    for tree in SDIST_TREES:
        files += [(name, path.read_bytes()) for name, path in tree_files(root, tree)]
    files.insert(0, ("PKG-INFO", metadata(project).encode("utf-8")))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=_epoch()) as compressed:
        with tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, content in files:
                info = tarfile.TarInfo(f"{project.stem}/{name}")
                info.size, info.mtime, info.mode = len(content), _epoch(), 0o644
                archive.addfile(info, io.BytesIO(content))
    basename = f"{project.stem}.tar.gz"
    _write_atomically(Path(directory) / basename, buffer.getvalue())
    return basename


def _write_atomically(path: Path, content: bytes) -> None:
    """A reader never sees half an archive under the final name."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def _write_metadata_directory(directory: str, project: Project) -> str:
    for name, content in dist_info_files(project):
        target = Path(directory) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return project.dist_info


# ---------------------------------------------------------------- PEP 517 / PEP 660 hooks

def get_requires_for_build_wheel(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings=None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings=None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None) -> str:
    return _write_metadata_directory(metadata_directory, load_project())


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None) -> str:
    return _write_metadata_directory(metadata_directory, load_project())


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    return write_wheel(wheel_directory, load_project(), package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    """A wheel whose only code is a ``.pth`` line putting this checkout's ``src/`` on sys.path,
    so edits take effect without reinstalling (the console scripts are installed as usual)."""
    project = load_project()
    path_file = (f"__editable__.{project.stem}.pth", f"{ROOT / 'src'}\n".encode("utf-8"))
    return write_wheel(wheel_directory, project, [path_file])


def build_sdist(sdist_directory, config_settings=None) -> str:
    return write_sdist(sdist_directory, load_project())


def _forget_own_bytecode() -> None:
    """Importing this module made Python cache its bytecode in ``build_backend/__pycache__``; a
    build must leave the checkout as it found it, and the cache is only ever an optimisation."""
    cached = globals().get("__cached__")
    if not cached:
        return
    try:
        os.remove(cached)
        os.rmdir(os.path.dirname(cached))
    except OSError:
        pass  # never written (PYTHONDONTWRITEBYTECODE), or the directory holds other caches


_forget_own_bytecode()
