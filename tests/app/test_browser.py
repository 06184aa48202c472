"""End to end: the app served by its entry point in a subprocess, driven by Playwright with Debian's Chromium."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "app"  # gitignored; CI keeps it as an artifact
URL_LINE = re.compile(r"serving .* at (http://\S+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _app_command(run: Path, port: int) -> list[str]:
    options = ["app", "--run", str(run), "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "mmfedrec", "--threads", "1", *options]


@pytest.fixture
def served_app(tiny_run: Path, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Start `mmfedrec app` on a free port; return its URL once printed. The process is killed afterwards."""
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MMFEDREC_THREADS": "1",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
    }
    process = subprocess.Popen(
        _app_command(tiny_run, _free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    request.addfinalizer(stop)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=90)
        except queue.Empty:
            pytest.fail(f"the app printed no URL within 90 s; output so far:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"the app exited with {process.wait()} before serving:\n{''.join(seen)}")
        seen.append(line)
        match = URL_LINE.search(line)
        if match:
            return match.group(1)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_recommend_tab_in_a_real_browser(served_app: str, context, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    counts = context.run.split.train_counts()
    user_id = int(context.user_ids[int(np.argmax(counts))])
    origin = served_app.rstrip("/")
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on(
                "request",
                lambda r: outside.append(r.url) if not r.url.startswith((origin, "data:", "blob:")) else None,
            )
            page.goto(served_app)
            box = page.locator("#user input")
            box.click()
            box.fill(str(user_id))
            page.locator("[role=option]", has_text=f"{user_id} ·").first.click()
            assert box.input_value().startswith(f"{user_id} ·")
            page.click("#recommend-button")
            page.wait_for_function(
                """k => {
                    const images = [...document.querySelectorAll('#recommendations img')];
                    return images.length === k && images.every(i => i.complete && i.naturalWidth > 0);
                }""",
                arg=context.k,
                timeout=60_000,
            )
            widths = page.evaluate(
                "() => [...document.querySelectorAll('#recommendations img')].map(i => i.naturalWidth)"
            )
            assert len(widths) == context.k and min(widths) > 0
            assert f"User {user_id}" in page.locator("#recommend-status").inner_text()
            page.wait_for_timeout(300)  # let the bar chart draw
            OUTPUT.mkdir(parents=True, exist_ok=True)
            for folder in (tmp_path, OUTPUT):
                page.screenshot(path=str(folder / "recommend.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "recommend.png").stat().st_size > 10_000
    assert outside == [], f"the page requested outside resources: {outside[:5]}"
