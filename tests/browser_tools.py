"""Helpers of the browser test: Debian's chromium driven by Playwright, a Voila server on a free
local port, what a user does to an explorer's controls, and the figure read back from the DOM."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
EXPLORER_TIMEOUT_MS = 300_000  # the notebook runs every cell before its explorer: ~15-35 s on 2 cores
UPDATE_TIMEOUT_MS = 60_000  # a control change reaches the figure in 0.4-3 s

# The figure of the output area marked by `find_explorer`, and its traces as plain nested lists.
FIGURE_JS = """(root) => {
  const gd = document.querySelector(`[data-explorer="${root}"] .js-plotly-plot`);
  const plain = (v) => (v !== null && typeof v === "object" && typeof v.length === "number")
      ? Array.from(v, plain) : v;
  const title = gd.layout.title;
  return {title: (title && title.text !== undefined) ? title.text : title,
          data: gd.data.map((t) => ({x: plain(t.x), y: plain(t.y), z: plain(t.z)}))};
}"""

# Marks the output area that holds a plotly figure and a label for every one of `labels`.
FIND_JS = """([root, labels]) => {
  for (const area of document.querySelectorAll(".jp-OutputArea-output, .jp-RenderedHTMLCommon, .cell")) {
    const gd = area.querySelector(".js-plotly-plot");
    const texts = new Set(Array.from(area.querySelectorAll("label"), (l) => l.textContent.trim()));
    if (gd && gd.data && gd.layout && labels.every((l) => texts.has(l))) {
      area.setAttribute("data-explorer", root);
      return true;
    }
  }
  return false;
}"""

TITLE_IS_JS = """([root, title]) => {
  const gd = document.querySelector(`[data-explorer="${root}"] .js-plotly-plot`);
  const t = gd && gd.layout.title;
  return ((t && t.text !== undefined) ? t.text : t) === title;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def voila(notebook: Path, log_path: Path):
    """Serve ``notebook`` with Voila on 127.0.0.1; yields its URL once the port accepts connections."""
    port = free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1"],
            cwd=notebook.parent, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"voila exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"voila did not listen on port {port} in 120 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/"
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def label_selector(description: str) -> str:
    return f"label:text-is({description!r})"


def control_locator(root, control):
    """The DOM widget of an ipywidgets control, found by its description inside ``root``."""
    return root.locator(".lm-Widget", has=root.page.locator(label_selector(control.description))).last


def read_control(root, control):
    """The value a control shows in the browser, as the Python control would hold it."""
    import ipywidgets as w

    widget = control_locator(root, control)
    if isinstance(control, w.ToggleButtons):
        return widget.locator("button.mod-active").get_attribute("data-value")
    if isinstance(control, (w.Dropdown, w.Select)):
        return widget.locator("select").evaluate("s => s.options[s.selectedIndex].textContent")
    if isinstance(control, w.Checkbox):
        return widget.locator("input[type=checkbox]").is_checked()
    if isinstance(control, (w.FloatLogSlider, w.IntSlider, w.FloatSlider)):
        # aria-valuetext carries the slider's full value (aria-valuenow is rounded); a log slider's is the exponent.
        shown = float(widget.locator(".noUi-handle").get_attribute("aria-valuetext"))
        if isinstance(control, w.FloatLogSlider):
            return control.base ** shown
        return int(round(shown)) if isinstance(control, w.IntSlider) else shown
    raise TypeError(f"the browser test cannot read a {type(control).__name__} yet; add it to read_control")


def shown_value(control):
    """A Python control's value in the form :func:`read_control` reads it from the browser."""
    import ipywidgets as w

    return control.label if isinstance(control, (w.ToggleButtons, w.Dropdown, w.Select)) else control.value


def same_value(control, a, b) -> bool:
    """Equal, or for a slider within half a step (a handle sits on the step grid)."""
    import ipywidgets as w

    if isinstance(control, w.FloatLogSlider):
        return abs(np.log(a) - np.log(b)) / np.log(control.base) <= control.step / 2 + 1e-9
    if isinstance(control, w.FloatSlider):
        return abs(a - b) <= control.step / 2 + 1e-9
    return a == b


def set_control(control, shown) -> None:
    """Give a Python control the value the browser shows (selection widgets by their label)."""
    import ipywidgets as w

    if isinstance(control, (w.ToggleButtons, w.Dropdown, w.Select)):
        control.label = shown
    else:
        control.value = shown


@dataclass(frozen=True)
class Click:
    """Click the option labelled ``option`` of a toggle-buttons control."""

    control: str
    option: str

    def __call__(self, root) -> None:
        widget = root.locator(".widget-toggle-buttons", has=root.page.locator(label_selector(self.control)))
        widget.locator(f"button[data-value={self.option!r}]").click()


@dataclass(frozen=True)
class Keys:
    """Focus a slider's handle and press ``keys`` (e.g. ArrowLeft: one step; PageUp: five)."""

    control: str
    keys: tuple[str, ...]

    def __call__(self, root) -> None:
        handle = root.locator(".widget-slider", has=root.page.locator(label_selector(self.control))).locator(".noUi-handle")
        handle.focus()
        for key in self.keys:
            root.page.keyboard.press(key)


@dataclass(frozen=True)
class Drag:
    """Drag a slider's handle with the mouse by ``fraction`` of the slider's length."""

    control: str
    fraction: float

    def __call__(self, root) -> None:
        slider = root.locator(".widget-slider", has=root.page.locator(label_selector(self.control)))
        handle, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-base").bounding_box()
        x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        mouse = root.page.mouse
        mouse.move(x, y)
        mouse.down()
        mouse.move(x + self.fraction * track["width"], y, steps=8)
        mouse.up()


@dataclass(frozen=True)
class Choose:
    """Pick the option labelled ``option`` of a dropdown."""

    control: str
    option: str

    def __call__(self, root) -> None:
        root.locator(".widget-dropdown", has=root.page.locator(label_selector(self.control))).locator(
            "select").select_option(label=self.option)


def figure_problems(shown: dict, figure, rtol: float = 1e-6, atol: float = 1e-9) -> list[str]:
    """Differences between a figure read from the DOM and a plotly figure built in Python."""
    problems = []
    if shown["title"] != figure.layout.title.text:
        problems.append(f"title: browser {shown['title']!r}, Python {figure.layout.title.text!r}")
    if len(shown["data"]) != len(figure.data):
        return problems + [f"{len(shown['data'])} traces in the browser, {len(figure.data)} in Python"]
    for i, (dom, trace) in enumerate(zip(shown["data"], figure.data)):
        for key in ("x", "y", "z"):
            expected = getattr(trace, key, None)
            if expected is None:
                continue
            try:
                want = np.asarray(expected, dtype=float)
                got = np.asarray(dom[key], dtype=float)
            except (TypeError, ValueError):  # labels, not numbers
                if list(np.asarray(expected).ravel()) != list(np.asarray(dom[key]).ravel()):
                    problems.append(f"trace {i} ({trace.name}) {key}: browser {dom[key]}, Python {expected}")
                continue
            if want.shape != got.shape or not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
                problems.append(f"trace {i} ({trace.name}) {key}: browser shape {got.shape}, Python {want.shape}; "
                                f"max difference {np.nanmax(np.abs(got - want)) if got.shape == want.shape else '-'}")
    return problems
