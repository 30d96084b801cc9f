"""The connector tests: one contract suite over every product connector, and each connector's
own tests."""

import pytest

# The shared helpers assert too: let pytest explain their failures as it does the tests'.
pytest.register_assert_rewrite(
    "tests.connectors.helpers", "tests.connectors.stores", "tests.connectors.subjects"
)
