"""Project-wide pytest configuration: fixtures every test directory may use."""

pytest_plugins = [
    "tests.fixtures.mosquitto",
    "tests.fixtures.netns",
    "tests.fixtures.rabbitmq",
    "tests.sites.hubs",
]
