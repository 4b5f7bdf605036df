pytest_plugins = ["tests.fixtures.core", "tests.fixtures.s3"]
