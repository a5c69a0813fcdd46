"""mkdocs-gen-files: a page a script generates can carry a stub, in either plugin order."""

from __future__ import annotations

import importlib.util
import textwrap
from typing import Any

import pytest

from tests.conftest import Site, needs
from tests.fake_server import FakeOpenAI
from tests.pages import GUIDE
from tests.test_properdocs import GUIDE_PATHS

SCRIPT = f"""
import mkdocs_gen_files

with mkdocs_gen_files.open("generated.md", "w") as page:
    page.write({textwrap.dedent(GUIDE).lstrip()!r})
"""


@needs(
    None
    if importlib.util.find_spec("mkdocs_gen_files")
    else "mkdocs-gen-files (pip install mkdocs-gen-files)"
)
@pytest.mark.parametrize("order", ["gen-files first", "aigen first"])
def test_a_generated_page_gets_its_sections(site: Site, server: FakeOpenAI, order: str) -> None:
    site.page("index.md", "# Home\n")
    (site.root / "gen_pages.py").write_text(SCRIPT, encoding="utf-8")
    gen_files = {"gen-files": {"scripts": [str(site.root / "gen_pages.py")]}}
    aigen = {"aigen": site.plugin}
    plugins: list[Any] = [gen_files, aigen] if order == "gen-files first" else [aigen, gen_files]
    site.extra_config["plugins"] = plugins
    site.build(strict=True)
    html = site.html("generated.md")
    for path in GUIDE_PATHS:
        assert f"Text for {path.replace('>', '&gt;')}." in html, path
    assert server.count() == len(GUIDE_PATHS)
    assert not (site.docs / "generated.md").exists()  # generated, never written to docs
