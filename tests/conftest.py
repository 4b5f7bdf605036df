pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.s3",
    "tests.fixtures.clips",
    "tests.fixtures.https",
    "tests.fixtures.corpus",
    "tests.fixtures.logscan",
]
