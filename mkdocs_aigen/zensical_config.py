"""A Zensical project as the rest of the package sees it: an MkDocs config and the options
of the ``mkdocs_aigen.markdown`` extension.

Zensical reads ``zensical.toml`` or ``mkdocs.yml`` itself and never loads MkDocs plugins.
The Markdown extension (under Zensical) and the command line (``mkdocs-aigen lock -f
zensical.toml``) both turn Zensical's parsed config into an ``MkDocsConfig`` here, so that
they list the same files and the same nav, and so send the same requests under the same
keys as ``mkdocs build`` of the same pages.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig

#: The name users write in ``markdown_extensions``.
EXTENSION = "mkdocs_aigen.markdown"
#: The answer cache under Zensical, when ``cache_dir`` is not set. The plugin's default,
#: ``.cache/plugin/aigen``, lies inside Zensical's own ``.cache`` folder, which
#: ``zensical build --clean`` deletes whole: every answer paid for would go with it.
ZENSICAL_CACHE_DIR = ".aigen/cache"
#: What ``zensical build`` looks for when it is given no ``-f``, in this order.
CONFIG_NAMES = ("zensical.toml", "mkdocs.yml", "mkdocs.yaml")


class ZensicalConfigError(Exception):
    """The Zensical config cannot be read or turned into a site."""


def extension_options(markdown_extensions: Any, mdx_configs: Any = None) -> dict[str, Any] | None:
    """The options given to ``mkdocs_aigen.markdown``, or ``None`` when it is not listed.

    Accepts Zensical's normalised form (a list of names plus ``mdx_configs``) and the forms
    users write: a list of names and one-entry mappings, or a mapping (TOML).
    """
    if isinstance(mdx_configs, Mapping) and EXTENSION in mdx_configs:
        return dict(mdx_configs[EXTENSION] or {})
    if isinstance(markdown_extensions, Mapping):
        if EXTENSION in markdown_extensions:
            return dict(markdown_extensions[EXTENSION] or {})
        return None
    if isinstance(markdown_extensions, Sequence) and not isinstance(markdown_extensions, str):
        for item in markdown_extensions:
            if item == EXTENSION:
                return {}
            if isinstance(item, Mapping) and EXTENSION in item:
                return dict(item[EXTENSION] or {})
    return None


def with_zensical_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options, with the cache outside the folder ``zensical build --clean`` deletes."""
    resolved = dict(options)
    resolved.setdefault("cache_dir", ZENSICAL_CACHE_DIR)
    return resolved


def cache_inside_zensical_cache(cache_dir: Path | None, root: Path) -> bool:
    """Whether the answer cache lies in Zensical's ``.cache`` (lost to ``--clean``)."""
    if cache_dir is None:
        return False
    zensical_cache = (root / ".cache").resolve()
    return cache_dir == zensical_cache or zensical_cache in cache_dir.parents


def mkdocs_nav(nav: Any) -> list[Any] | None:
    """Zensical's normalised nav (``{"title", "url", "children"}`` items) back in the
    shape ``mkdocs.yml`` has; ``None`` (MkDocs' own order) when there is none."""
    if not nav:
        return None

    def item(entry: Any) -> Any:
        if isinstance(entry, list):
            return [item(child) for child in entry]
        if not isinstance(entry, Mapping):
            return entry
        if "children" not in entry and "url" not in entry:
            return dict(entry)  # already MkDocs' shape
        title, url = entry.get("title"), entry.get("url")
        if url is None:
            return {str(title): [item(child) for child in entry.get("children") or []]}
        return url if title is None else {str(title): url}

    return [item(entry) for entry in nav]


def mkdocs_config(zensical: Mapping[str, Any], config_file: Path) -> MkDocsConfig:
    """An MkDocs config with what decides the files, the nav and the prompts of a site:
    site name, folders, nav and the doc patterns. No theme or plugin is loaded."""
    config = MkDocsConfig(config_file_path=str(config_file))
    values: dict[str, Any] = {
        "site_name": zensical.get("site_name") or "",
        "docs_dir": zensical.get("docs_dir") or "docs",
        "site_dir": zensical.get("site_dir") or "site",
        "nav": mkdocs_nav(zensical.get("nav")),
        "use_directory_urls": zensical.get("use_directory_urls", True),
        "plugins": [],
    }
    for name in ("exclude_docs", "draft_docs", "not_in_nav"):
        if zensical.get(name):
            values[name] = zensical[name]
    config.load_dict(values)
    errors, _ = config.validate()
    if errors:
        problems = "; ".join(f"'{key}': {error}" for key, error in errors)
        raise ZensicalConfigError(f"{config_file.name}: {problems}")
    return config


def load(config_file: Path) -> dict[str, Any]:
    """Zensical's own reading of its config file (``zensical.toml`` or ``mkdocs.yml``)."""
    try:
        from zensical.config import parse_config
    except ImportError:
        raise ZensicalConfigError(
            f"{config_file.name} is a Zensical config: install Zensical to read it "
            "(pip install zensical)"
        ) from None
    # Zensical resolves relative paths from the working folder's point of view of the file.
    try:
        return parse_config(str(config_file.resolve()))
    except Exception as error:  # Zensical's ConfigurationError is a click exception
        message = getattr(error, "message", None) or str(error)
        raise ZensicalConfigError(f"{config_file.name}: {message}") from None


def running_config() -> dict[str, Any] | None:
    """The config of the Zensical build running in this process, else ``None``."""
    module = sys.modules.get("zensical.config")
    if module is None:
        return None
    config = module.get_config()
    return config if isinstance(config, dict) else None


def running_config_file(root: Path, argv: Sequence[str] | None = None) -> Path:
    """The config file of the running ``zensical build``: its ``-f``, else the first of
    :data:`CONFIG_NAMES` in its project folder (what Zensical itself picks)."""
    arguments = list(sys.argv if argv is None else argv)
    for index, argument in enumerate(arguments):
        for flag in ("-f", "--config-file"):
            if argument == flag and index + 1 < len(arguments):
                return Path(os.path.abspath(arguments[index + 1]))
            if argument.startswith(f"{flag}=") and flag.startswith("--"):
                return Path(os.path.abspath(argument.split("=", 1)[1]))
    for name in CONFIG_NAMES:
        if (root / name).is_file():
            return (root / name).resolve()
    return (root / CONFIG_NAMES[0]).resolve()


def forget_rendered(root: Path, src_paths: Sequence[str]) -> list[str]:
    """Remove Zensical's stored renderings of these pages, so its next build renders them
    again; the pages whose rendering was found and removed.

    Zensical 0.0.73 keeps each rendered page in ``<project>/.cache/<number>``, a JSON file
    whose ``data.route.source`` is the page's path in ``docs_dir``. Only files of exactly
    that shape are touched; if a later version stores them otherwise, nothing is removed.
    """
    import json

    wanted = set(src_paths)
    folder = root / ".cache"
    forgotten: list[str] = []
    if not wanted or not folder.is_dir():
        return forgotten
    for path in folder.iterdir():
        if not path.name.isdigit() or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8")).get("data")
            source = data["route"]["source"] if isinstance(data, dict) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if source in wanted:
            path.unlink(missing_ok=True)
            forgotten.append(str(source))
    return sorted(forgotten)
