"""Swagger UI at ``/docs`` really renders the API in a browser, offline.

A real ``shop serve`` process is loaded by headless Chromium, which runs Swagger UI's JavaScript
and dumps the resulting DOM. The page's HTML lists no operation itself, so finding every
operation of ``/openapi.json`` in the dump proves the document was fetched, parsed and rendered.
Every host but the loopback is unresolvable for the browser, so the page also proves it needs
nothing from the internet. Skipped when no Chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.conftest import prepare_instance
from tests.e2e.server import REQUEST_TIMEOUT, ShopServer, shop_env

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH: install Debian's chromium package to run the Swagger UI browser test",
    ),
]

BROWSER_TIMEOUT = 60.0
# Chromium without the services a desktop browser phones home to, and with every host but the
# loopback unresolvable: a resource fetched from elsewhere would fail to load.
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Virtual time runs until the page is idle (scripts loaded, document fetched and rendered).
    "--virtual-time-budget=10000",
)
RESOURCE_ATTRIBUTES = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src"}


class RenderedPage(HTMLParser):
    """What a DOM dump shows: the operations Swagger UI rendered, its title and the resources."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[tuple[str, str]] = []
        self.resources: list[str] = []
        self.title = ""
        self.has_errors = False
        self._method: str | None = None
        self._reading: str | None = None  # "method" or "title" while inside such an element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag in RESOURCE_ATTRIBUTES and attributes.get(RESOURCE_ATTRIBUTES[tag]):
            self.resources.append(str(attributes[RESOURCE_ATTRIBUTES[tag]]))
        if "errors-wrapper" in classes:
            self.has_errors = True
        if "opblock-summary-method" in classes:
            self._method, self._reading = "", "method"
        elif "opblock-summary-path" in classes and self._method is not None:
            self.operations.append((self._method.strip().lower(), str(attributes.get("data-path"))))
            self._method = None
        elif tag in {"h1", "h2"} and "title" in classes:
            self._reading = "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in {"span", "h1", "h2"}:
            self._reading = None

    def handle_data(self, data: str) -> None:
        if self._reading == "method" and self._method is not None:
            self._method += data
        elif self._reading == "title":
            self.title += data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopServer]:
    folder = tmp_path_factory.mktemp("swagger-ui")
    env = shop_env(folder / "instance")
    prepare_instance(folder / "instance")
    with ShopServer(env, folder / "server.log") as running:
        yield running


def dump_dom(url: str, profile: Path) -> RenderedPage:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, f"chromium exited {result.returncode}\n{result.stderr[-3000:]}"
    page = RenderedPage()
    page.feed(result.stdout)
    page.close()
    return page


@pytest.fixture(scope="module")
def rendered(server: ShopServer, tmp_path_factory: pytest.TempPathFactory) -> RenderedPage:
    """``/docs`` as Chromium shows it once Swagger UI has run."""
    return dump_dom(f"{server.url}/docs", tmp_path_factory.mktemp("chromium-profile"))


def documented_operations(server: ShopServer) -> tuple[str, set[tuple[str, str]]]:
    document = httpx.get(f"{server.url}/openapi.json", timeout=REQUEST_TIMEOUT).json()
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    return document["info"]["title"], operations


def test_swagger_ui_lists_every_documented_operation(server: ShopServer, rendered: RenderedPage) -> None:
    title, operations = documented_operations(server)

    assert not rendered.has_errors, "Swagger UI reported errors in the document"
    assert rendered.title.strip().startswith(title), rendered.title
    assert len(rendered.operations) == len(operations), rendered.operations
    assert set(rendered.operations) == operations


def test_the_page_loads_nothing_from_another_origin(server: ShopServer, rendered: RenderedPage) -> None:
    assert rendered.resources, "the dump lists no scripts or stylesheets at all"
    origin = urlsplit(server.url).netloc
    foreign = [src for src in rendered.resources if urlsplit(urljoin(f"{server.url}/docs", src)).netloc != origin]
    assert foreign == []


def test_the_served_html_lists_no_operation_itself(server: ShopServer) -> None:
    """The control for the tests above: the operations in the dump come from Swagger UI's rendering."""
    served = httpx.get(f"{server.url}/docs", timeout=REQUEST_TIMEOUT)
    page = RenderedPage()
    page.feed(served.text)

    assert served.status_code == 200
    assert page.resources, "the page loads no scripts at all"
    assert page.operations == [] and page.title == ""
