def pytest_addoption(parser):
    parser.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="rewrite tests/baselines/<notebook>.json from this run's metrics (keeps each tolerance)",
    )
