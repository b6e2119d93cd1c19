import pytest

from alignlib.common import threads


def pytest_addoption(parser):
    parser.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="rewrite tests/baselines/<notebook>.json from this run's metrics (keeps each tolerance)",
    )


def pytest_configure(config):
    """Each test worker gets its share of the cores, through the environment it inherits and
    passes on to every notebook kernel and Voila server it starts."""
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist), before workers start
        threads.configure(threads.share(len(config.getoption("tx", None) or ()) or 1))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup`` (``make test``) each file's tests stay on one worker, as with
    ``loadfile`` (module fixtures are built once), except the notebook regression runs: each
    notebook is a group of its own, so the notebooks share both workers. The longest groups go first
    (the notebooks' regression runs, the later notebooks first, then the browser tests), so that no
    worker is left alone with one of them at the end."""
    def notebook_of(item):
        return item.callspec.params.get("notebook") if item.get_closest_marker("notebook") else None

    for item in items:
        notebook = notebook_of(item)
        item.add_marker(pytest.mark.xdist_group(notebook.stem if notebook else item.path.name))
    items.sort(key=lambda item: (0, -int(notebook_of(item).stem[:2])) if notebook_of(item) else
               (1, 0) if item.path.name == "test_browser.py" else (2, 0))
