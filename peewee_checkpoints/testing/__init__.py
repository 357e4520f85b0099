"""The conformance kits: the contract of CONTRACT.md, and the OpenAI Agents SDK's ``Session``
protocol (:class:`SessionContract`), as reusable pytest suites.

Subclass :class:`CheckpointProviderContract` in a test module and give it a ``provider``
fixture that yields a fresh, empty provider; pytest then runs every contract test against it::

    import pytest
    from peewee_checkpoints.testing import CheckpointProviderContract

    class TestMyProvider(CheckpointProviderContract):
        @pytest.fixture
        def provider(self, tmp_path):
            with MyProvider(tmp_path / "store") as p:
                yield p

To test the entry-point registration as well, build the provider the way applications do:
``load_provider({"checkpoints": {"providers": {"p": {"type": "my-type", ...}}}})``.
"""

from __future__ import annotations

from .contract import CheckpointProviderContract, assert_same_json
from .session_contract import SessionContract

__all__ = ["CheckpointProviderContract", "SessionContract", "assert_same_json"]
