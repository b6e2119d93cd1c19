"""What every explorer shares: the :class:`Explorer` base (display, title), :func:`watch` for the
controls, and the legend's place."""
from __future__ import annotations

# A horizontal legend above the right-hand panel: it covers neither an axis title nor the data.
LEGEND_ABOVE_RIGHT = dict(orientation="h", x=1.0, xanchor="right", y=1.13, yanchor="bottom")


def watch(controls, callback) -> None:
    """Call ``callback`` whenever any of the ipywidgets ``controls`` changes its value."""
    for control in controls:
        control.observe(callback, names="value")


class Explorer:
    """An explorer owns its ipywidgets controls (each with a ``description``) and a plotly
    ``FigureWidget`` built with its real initial data (``self.figure``), in ``self.widget``; the
    controls' callbacks change the figure, so what a test sees after setting a control is what a
    browser shows. Display one as the last expression of a cell, or with ``display(explorer)``."""

    @property
    def title(self) -> str:
        """The title the figure shows."""
        return self.figure.layout.title.text

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
