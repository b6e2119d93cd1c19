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
