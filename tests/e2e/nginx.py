"""A real nginx for end-to-end tests, running the configuration ``shop gateway nginx`` generates.

The generated configuration belongs in nginx's ``http`` block; :func:`nginx_gateway` wraps it in
a main configuration of the test's own (every file nginx writes in the test's folder, one
process, in the foreground), starts nginx and stops it on leaving. Skips, saying so, when nginx
is not installed (``apt-get install nginx-light``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.server import HOST, free_port, shop, stop_process, wait_until_answering

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
STARTUP_TIMEOUT = 10.0

MAIN_CONF = """\
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/shop.conf;
}}
"""


def nginx_or_skip() -> str:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; .ci/run installs it)")
    return NGINX


def generated_config(upstreams: Sequence[str], port: int, *, env: Mapping[str, str], cwd: Path) -> str:
    """What ``shop gateway nginx`` prints for ``upstreams`` (``[CONTEXTS=]URL`` each), listening on
    ``port`` of the loopback address, with the settings ``env``."""
    options = [argument for upstream in upstreams for argument in ("--upstream", upstream)]
    return shop("gateway", "nginx", *options, "--listen", f"{HOST}:{port}", env=env, cwd=cwd).stdout


@contextmanager
def nginx_gateway(upstreams: Sequence[str], folder: Path, *, env: Mapping[str, str]) -> Iterator[str]:
    """nginx on a free loopback port with the generated configuration for ``upstreams``; yields
    its URL once it answers."""
    nginx = nginx_or_skip()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "shop.conf").write_text(generated_config(upstreams, port, env=env, cwd=folder))
    conf = folder / "nginx.conf"
    conf.write_text(MAIN_CONF.format(folder=folder))
    with (folder / "nginx.out").open("wb") as log:
        process = subprocess.Popen(
            [nginx, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://{HOST}:{port}"
        try:
            # /internal is refused without asking any upstream: nginx answers whether they are up or not.
            wait_until_answering(
                process,
                url,
                "/internal",
                timeout=STARTUP_TIMEOUT,
                name="nginx",
                log_tail=(folder / "error.log").read_text,
                ready=lambda _response: True,
            )
            yield url
        finally:
            stop_process(process, signal.SIGQUIT)
