"""Executed notebooks as HTML pages that need no network.

Maths is typeset by a local MathJax (from the ``jupyter-server-mathjax`` package) and widgets are
drawn as static snapshots of the state the kernel saved: controls as inactive HTML controls,
progress bars as ``<progress>``, plotly ``FigureWidget``\\ s as figures drawn by a local plotly.js
(from the ``plotly`` package). :func:`install_assets` copies both scripts into ``static/`` beside
the pages, so the folder can be moved or opened without internet.

The first screen of a page teaches: papermill's injected-parameters cell (which names paths of the
machine that ran it) is dropped, and the cells tagged ``parameters`` or ``setup`` (imports, settings)
are folded under a one-line summary (:func:`fold_setup`).
"""
from __future__ import annotations

import copy
import html
import json
import math
import shutil
import uuid
from pathlib import Path

ASSETS = "static"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MODEL_PREFIX = "IPY_MODEL_"
FOLDED_TAGS = {"parameters": "parameters (the CPU defaults; papermill sets them)", "setup": "setup (imports)"}
DROPPED_TAGS = {"injected-parameters"}

_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script src="ASSETS/plotly.min.js"></script>
{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  displayAlign: "center", messageStyle: "none", showMathMenu: false, menuSettings: {zoom: "None"}
});
</script>
<script src="ASSETS/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"></script>
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}
<style>
.alignlib-widget{display:flex;flex-direction:column;gap:4px;font-size:13px}
.alignlib-widget .row{display:flex;flex-direction:row;flex-wrap:wrap;gap:4px 24px;align-items:center}
.alignlib-widget .column{display:flex;flex-direction:column;gap:4px}
.alignlib-widget label{margin-right:8px}
.alignlib-widget button{margin-right:2px;padding:4px 14px;border:0;background:#eee}
.alignlib-widget button.active{background:#bbb}
.alignlib-widget progress{width:20em}
.alignlib-widget .readout{margin-left:8px}
.alignlib-widget .note{color:#666;font-style:italic}
.alignlib-folded{margin:4px 0 4px 64px;color:#555;font-size:12px}
.alignlib-folded pre{background:#f5f5f5;padding:6px}
</style>
{% endblock extra_css %}
""".replace("ASSETS", ASSETS)


def install_assets(out_dir: Path) -> Path:
    """Copy MathJax and plotly.js into ``out_dir/static`` (what the pages load); returns that folder."""
    import jupyter_server_mathjax
    import plotly

    assets = Path(out_dir) / ASSETS
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, assets / "mathjax", dirs_exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    return assets


def notebook_to_html(notebook) -> str:
    """An executed notebook (``nbformat`` node) as one HTML page that loads scripts from ``static/``."""
    import jinja2
    import nbconvert

    exporter = nbconvert.HTMLExporter(template_name="lab", template_file="alignlib_offline.html.j2",
                                      extra_loaders=[jinja2.DictLoader({"alignlib_offline.html.j2": _TEMPLATE})])
    body, _ = exporter.from_notebook_node(fold_setup(snapshot_widgets(notebook)))
    return body


def fold_setup(notebook):
    """A copy of ``notebook`` without the cells tagged :data:`DROPPED_TAGS`, and with the source of
    each code cell tagged in :data:`FOLDED_TAGS` folded into a closed ``<details>`` (its outputs stay)."""
    import nbformat

    notebook = copy.deepcopy(notebook)
    cells = []
    for cell in notebook.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & DROPPED_TAGS:
            continue
        folded = [FOLDED_TAGS[tag] for tag in FOLDED_TAGS if tag in tags]
        if cell.cell_type != "code" or not folded:
            cells.append(cell)
            continue
        # a markdown cell of raw HTML (a raw cell's HTML is escaped); a blank line would end the HTML block
        source = "\n".join(html.escape(line) or "&#32;" for line in cell.source.splitlines())
        cells.append(nbformat.v4.new_markdown_cell(
            f"<details class='alignlib-folded'><summary>{html.escape(folded[0])}</summary><pre>{source}</pre></details>"))
        if cell.get("outputs"):
            cell.setdefault("transient", {})["remove_source"] = True
            cells.append(cell)
    notebook.cells = cells
    return notebook


def snapshot_widgets(notebook):
    """A copy of ``notebook`` whose widget outputs are static HTML drawn from the saved widget state.

    The saved state is removed from the copy, so no page tries to load a widget manager.
    """
    notebook = copy.deepcopy(notebook)
    state = notebook.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                continue
            snapshot = render_widget(view["model_id"], state)
            output["data"] = {"text/html": snapshot, "text/plain": output["data"].get("text/plain", "")}
    return notebook


def render_widget(model_id: str, state: dict) -> str:
    """Static HTML for one widget and its children; a widget closed before the end draws nothing."""
    if model_id not in state:
        return ""
    body = _render(model_id, state)
    note = ("<div class='note'>Static snapshot: the controls do nothing here; open the notebook with "
            "<code>make lab</code> to use them.</div>") if _has_controls(model_id, state) else ""
    return f"<div class='alignlib-widget'>{body}{note}</div>"


def _children(model: dict) -> list[str]:
    return [child.removeprefix(MODEL_PREFIX) for child in model["state"].get("children", [])]


def _has_controls(model_id: str, state: dict) -> bool:
    model = state.get(model_id)
    if model is None:
        return False
    name = model["model_name"]
    return name in _CONTROLS or any(_has_controls(child, state) for child in _children(model))


def _label(s: dict, inner: str) -> str:
    description = s.get("description") or ""
    label = f"<label>{html.escape(description)}</label>" if description else ""
    return f"<span>{label}{inner}</span>"


def _readout(value, spec: str) -> str:
    try:
        return format(value, spec or "")
    except (TypeError, ValueError):
        return str(value)


def _slider(s: dict, log: bool = False) -> str:
    value = s["value"]
    position = math.log(value, s["base"]) if log else value
    return _label(s, f"<input type='range' disabled min='{s['min']}' max='{s['max']}' step='{s['step']}' "
                     f"value='{position}'><span class='readout'>{html.escape(_readout(value, s.get('readout_format')))}"
                     "</span>")


def _range_slider(s: dict) -> str:
    low, high = s["value"]
    spec = s.get("readout_format")
    return _label(s, f"<span class='readout'>{html.escape(_readout(low, spec))} &ndash; "
                     f"{html.escape(_readout(high, spec))}</span>")


def _toggle_buttons(s: dict) -> str:
    buttons = "".join(f"<button disabled class='{'active' if i == s.get('index') else ''}'>{html.escape(label)}</button>"
                      for i, label in enumerate(s.get("_options_labels", [])))
    return _label(s, f"<span>{buttons}</span>")


def _select(s: dict) -> str:
    options = "".join(f"<option{' selected' if i == s.get('index') else ''}>{html.escape(label)}</option>"
                      for i, label in enumerate(s.get("_options_labels", [])))
    return _label(s, f"<select disabled>{options}</select>")


def _checkbox(s: dict) -> str:
    return _label(s, f"<input type='checkbox' disabled{' checked' if s.get('value') else ''}>")


def _text(s: dict) -> str:
    return _label(s, f"<input type='text' disabled value='{html.escape(str(s.get('value', '')), quote=True)}'>")


def _progress(s: dict) -> str:
    return _label(s, f"<progress max='{s['max'] - s['min']:g}' value='{s['value'] - s['min']:g}'></progress>")


def _output(s: dict) -> str:
    parts = []
    for output in s.get("outputs", []):
        data = output.get("data", {})
        if output.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(output.get('text', ''))}</pre>")
        elif "text/html" in data:
            parts.append(data["text/html"])
        elif "image/png" in data:
            parts.append(f"<img src='data:image/png;base64,{data['image/png']}'>")
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(data['text/plain'])}</pre>")
    return "".join(parts)


def _plotly_figure(s: dict) -> str:
    """A plotly ``FigureWidget``'s saved data and layout, drawn by plotly.js when the page loads."""
    div = f"figure-{uuid.uuid4().hex}"
    data = json.dumps(s.get("_widget_data", [])).replace("</", "<\\/")
    layout = json.dumps(s.get("_widget_layout", {})).replace("</", "<\\/")
    return (f"<div id='{div}'></div><script>Plotly.newPlot(document.getElementById('{div}'), {data}, {layout}, "
            "{displaylogo: false});</script>")


_CONTROLS = {
    "IntSliderModel": _slider, "FloatSliderModel": _slider,
    "FloatLogSliderModel": lambda s: _slider(s, log=True),
    "IntRangeSliderModel": _range_slider, "FloatRangeSliderModel": _range_slider,
    "ToggleButtonsModel": _toggle_buttons,
    "DropdownModel": _select, "SelectModel": _select, "RadioButtonsModel": _select,
    "CheckboxModel": _checkbox, "ToggleButtonModel": _checkbox,
    "TextModel": _text, "IntTextModel": _text, "FloatTextModel": _text,
    "BoundedIntTextModel": _text, "BoundedFloatTextModel": _text,
}
_DISPLAYS = {
    "HTMLModel": lambda s: f"<span>{s.get('value', '')}</span>",
    "HTMLMathModel": lambda s: f"<span>{s.get('value', '')}</span>",
    "LabelModel": lambda s: f"<span>{html.escape(s.get('value', ''))}</span>",
    "FloatProgressModel": _progress, "IntProgressModel": _progress,
    "OutputModel": _output,
}
_BOXES = {"HBoxModel": "row", "BoxModel": "row", "GridBoxModel": "row", "VBoxModel": "column"}


def _render(model_id: str, state: dict) -> str:
    model = state.get(model_id)
    if model is None:
        return ""
    name, s = model["model_name"], model["state"]
    if name in _BOXES:
        children = "".join(_render(child, state) for child in _children(model))
        return f"<div class='{_BOXES[name]}'>{children}</div>"
    if name in _CONTROLS:
        return _CONTROLS[name](s)
    if name in _DISPLAYS:
        return _DISPLAYS[name](s)
    if name == "AnyModel" and "_widget_data" in s:
        return _plotly_figure(s)
    return f"<span class='note'>[{html.escape(name.removesuffix('Model'))} widget: shown only in a live notebook]</span>"
