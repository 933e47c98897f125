"""``ganframe new``: render a project or plugin package from the templates shipped with ganframe.

The templates live in the top-level ``templates/`` folder, installed as the package
``ganframe.templates`` and read with :mod:`importlib.resources`. Files ending in ``.j2``
are rendered with Jinja2, others copied; names may hold ``{{module}}``. Everything is
rendered in memory and checked before the first file is written, so bad input or a
template error writes nothing. Never imports TensorFlow.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from ganframe import __version__
from ganframe.contract import CONTRACT_VERSION, KINDS
from ganframe.errors import ConfigError
from ganframe.files import atomic_write

#: Component kinds the templates have an example for (every kind), and the defaults per template.
SUPPORTED_KINDS = KINDS
DEFAULT_KINDS = {
    "project": ("architecture", "dataset"),
    "plugin": ("architecture", "dataset", "loss", "callback"),
}
#: Component names: ``<slug>-<suffix>`` (lower case, as the plugin contract requires).
_COMPONENT_SUFFIX = {"architecture": "mlp", "dataset": "shapes", "loss": "lsq", "callback": "log", "augmentation": "flip",
                     "metric": "pixel-gap", "feature_extractor": "pool"}

_PEP508_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
#: Module names a generated package must not take: it would shadow these on import.
_RESERVED = {"ganframe", "keras", "tensorflow", "test", "tests", "numpy", "pydantic", "pluggy", "typer",
             "jinja2", "pytest", "setuptools", "pip", "sklearn", "PIL"}


@dataclass(frozen=True)
class Scaffold:
    """What ``render`` produced: the target directory and the files, by relative path, in memory."""

    template: str
    target: Path
    files: dict[str, bytes]
    variables: dict[str, Any]


def templates_root() -> Traversable:
    return files("ganframe.templates")


def available_templates() -> list[str]:
    return sorted(entry.name for entry in templates_root().iterdir()
                  if entry.is_dir() and not entry.name.startswith(("_", ".")) and entry.name != "__pycache__")


def check_name(name: str) -> str:
    """The Python module name for distribution ``name``, or a ConfigError saying why it cannot be used."""
    if not name or not name.strip():
        raise ConfigError("the name is empty; give one, e.g. `ganframe new my-project`")
    if "/" in name or "\\" in name or name.startswith(".") or Path(name).is_absolute():
        raise ConfigError(f"name {name!r} is a path; give a plain name (the project is created in --dir, "
                          f"e.g. `ganframe new my-project --dir {str(Path(name).parent) or '.'}`)")
    if not _PEP508_NAME.match(name):
        raise ConfigError(f"name {name!r} is not a valid package name: use letters, digits, '-', '_' and '.', "
                          "starting and ending with a letter or digit")
    module = re.sub(r"[-.]+", "_", name).lower()
    if not module.isidentifier() or keyword.iskeyword(module) or module[0].isdigit():
        raise ConfigError(f"name {name!r} gives the Python module name {module!r}, which is not a valid identifier "
                          "(it must start with a letter or '_' and not be a keyword)")
    if module in _RESERVED or module in sys.stdlib_module_names or module.lower() in {m.lower() for m in _RESERVED}:
        raise ConfigError(f"name {name!r} gives the module name {module!r}, which would shadow "
                          f"{'the standard library module' if module in sys.stdlib_module_names else 'the package'} "
                          f"{module!r}; choose another name")
    return module


def parse_kinds(kinds: str | Iterable[str] | None, template: str) -> list[str]:
    """Chosen kinds in contract order; ``None`` gives the template's defaults."""
    if kinds is None:
        chosen = list(DEFAULT_KINDS.get(template, ("architecture",)))
    else:
        items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
        chosen = [item.strip().lower().replace("-", "_") for item in items if item.strip()]
        if not chosen:
            raise ConfigError(f"--kinds is empty; choose from: {', '.join(SUPPORTED_KINDS)}")
        unknown = [kind for kind in chosen if kind not in SUPPORTED_KINDS]
        if unknown:
            raise ConfigError(f"unknown kind(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(SUPPORTED_KINDS)}")
    return [kind for kind in SUPPORTED_KINDS if kind in chosen]


def _one_line(value: str, what: str) -> str:
    value = value.strip()
    if "\n" in value or "\r" in value:
        raise ConfigError(f"{what} must be one line")
    return value


def ganframe_requirement(version: str = __version__) -> str:
    """``ganframe>=0.1.0,<0.2`` (0.x: the next minor may break) or ``ganframe>=1.2.0,<2``."""
    parts = [int(part) for part in re.findall(r"\d+", version)[:2]] + [0, 0]
    major, minor = parts[0], parts[1]
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"ganframe>={version},<{upper}"


def _environment() -> Any:
    import jinja2
    import tomli_w

    root = templates_root()

    def load(name: str) -> str:
        entry = root
        for part in PurePosixPath(name).parts:
            entry = entry.joinpath(part)
        if not entry.is_file():
            raise jinja2.TemplateNotFound(name)
        return entry.read_text(encoding="utf-8")

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["toml"] = lambda value: tomli_w.dumps({"v": str(value)})[4:].strip()
    # Python literals; strings double-quoted like the rest of the generated code (JSON escapes are valid Python).
    env.filters["pyrepr"] = lambda value: json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return env


def _walk(entry: Traversable, prefix: PurePosixPath) -> Iterable[tuple[PurePosixPath, Traversable]]:
    for child in sorted(entry.iterdir(), key=lambda item: item.name):
        if child.name == "__pycache__" or child.name.endswith(".pyc"):
            continue
        if child.is_dir():
            yield from _walk(child, prefix / child.name)
        else:
            yield prefix / child.name, child


def render(
    name: str,
    template: str = "project",
    *,
    parent: str | Path = ".",
    author: str = "",
    description: str | None = None,
    kinds: str | Iterable[str] | None = None,
) -> Scaffold:
    """Render ``template`` for ``name`` in memory; raises ConfigError on bad input, writes nothing."""
    module = check_name(name)
    available = available_templates()
    if template not in available:
        raise ConfigError(f"unknown template {template!r}; available: {', '.join(available)}")
    chosen = parse_kinds(kinds, template)
    slug = module.replace("_", "-").strip("-") or module
    if description is None:
        description = f"A ganframe {'plugin' if template == 'plugin' else 'project'}: {name}."
    variables: dict[str, Any] = {
        "name": name,
        "module": module,
        "slug": slug,
        "author": _one_line(author, "--author"),
        "description": _one_line(description, "--description") or f"{name}.",
        "kinds": chosen,
        "components": {kind: f"{slug}-{_COMPONENT_SUFFIX[kind]}" for kind in chosen},
        "template": template,
        "ganframe_version": __version__,
        "ganframe_requirement": ganframe_requirement(),
        "contract_major": CONTRACT_VERSION.split(".")[0],
    }

    import jinja2

    env = _environment()
    rendered: dict[str, bytes] = {}
    for relative, entry in _walk(templates_root().joinpath(template), PurePosixPath()):
        try:
            parts = [env.from_string(part).render(variables) for part in relative.parts]
            if any(not part or part in (".", "..") or "/" in part or "\\" in part for part in parts):
                raise ConfigError(f"template {template!r}: file name {relative.as_posix()!r} renders to {'/'.join(parts)!r}")
            if parts[-1].endswith(".j2"):
                parts[-1] = parts[-1][:-3]
                text = env.get_template(f"{template}/{relative.as_posix()}").render(variables)
                if not text.strip():
                    continue  # a module of a kind that was not chosen
                content = text.encode("utf-8")
            else:
                content = entry.read_bytes()
        except jinja2.TemplateError as error:
            raise ConfigError(f"template {template!r}, file {relative.as_posix()!r}: {error}") from None
        rendered["/".join(parts)] = content
    return Scaffold(template, Path(parent) / name, rendered, variables)


def check_target(scaffold: Scaffold, force: bool) -> None:
    target = scaffold.target
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{str(target)!r} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ConfigError(f"directory {str(target)!r} exists and is not empty; choose another name or --dir, "
                          "or pass --force to write the template's files into it (other files are kept)")
    for relative in scaffold.files:  # with --force: a template file must not land on a directory
        path = target / relative
        if path.exists() and not path.is_file():
            raise ConfigError(f"{str(path)!r} exists and is not a file; move it away first")
        for parent in list(path.relative_to(target).parents)[:-1]:
            if (target / parent).exists() and not (target / parent).is_dir():
                raise ConfigError(f"{str(target / parent)!r} exists and is not a directory; move it away first")


def write(scaffold: Scaffold, force: bool = False) -> list[Path]:
    """Write the rendered files (each atomically); never deletes anything. Returns the paths written."""
    check_target(scaffold, force)
    written = []
    for relative, content in scaffold.files.items():
        path = scaffold.target / relative
        with atomic_write(path, "wb") as handle:
            handle.write(content)
        written.append(path)
    return written


def new(name: str, template: str = "project", *, parent: str | Path = ".", author: str = "",
        description: str | None = None, kinds: str | Iterable[str] | None = None, force: bool = False) -> Scaffold:
    """Render and write; the Python face of ``ganframe new``."""
    scaffold = render(name, template, parent=parent, author=author, description=description, kinds=kinds)
    write(scaffold, force)
    return scaffold
