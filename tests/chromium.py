"""Launching Debian's chromium under Playwright, shared by the browser tests and the
screenshot script (Playwright's own browser download cannot work on these machines)."""

from __future__ import annotations

import shutil

# Headless, and without the background services whose connections this network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright):
    """Start chromium from PATH; RuntimeError says how to install it when it is missing."""
    executable = shutil.which("chromium")
    if not executable:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
