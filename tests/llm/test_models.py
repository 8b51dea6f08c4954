"""Whether the hub answers is asked through huggingface_hub's own session: its endpoint, its offline mode."""

import huggingface_hub.utils
import pytest
from huggingface_hub import constants

from simnpo.llm import models


class _Session:
    def __init__(self, error: Exception | None = None):
        self.error, self.asked = error, []

    def head(self, url, timeout):
        self.asked.append((url, timeout))
        if self.error is not None:
            raise self.error


@pytest.fixture
def session(monkeypatch):
    def use(error=None):
        made = _Session(error)
        monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: made)
        models.hub_reachable.cache_clear()
        return made

    yield use
    models.hub_reachable.cache_clear()


def test_the_hub_is_reachable_when_its_endpoint_answers_the_hub_session(session):
    made = session()
    assert models.hub_reachable(timeout=2.0)
    assert made.asked == [(constants.ENDPOINT, 2.0)]


@pytest.mark.parametrize(
    "error", [huggingface_hub.utils.OfflineModeIsEnabled("offline"), OSError("no route to host"), TimeoutError()]
)
def test_offline_mode_and_network_errors_mean_unreachable(session, error):
    made = session(error)
    assert not models.hub_reachable()
    assert len(made.asked) == 1


def test_the_real_hub_session_refuses_in_offline_mode(monkeypatch):
    real, raised = huggingface_hub.utils.get_session(), []

    class Watched:  # the hub's own session, its refusal recorded: no network is asked (none would answer here either)
        def head(self, url, timeout):
            try:
                return real.head(url, timeout=timeout)
            except Exception as err:
                raised.append(type(err))
                raise

    monkeypatch.setattr(huggingface_hub.utils, "get_session", Watched)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when the hub is imported
    models.hub_reachable.cache_clear()
    try:
        assert not models.hub_reachable()
    finally:
        models.hub_reachable.cache_clear()
    assert raised == [huggingface_hub.utils.OfflineModeIsEnabled]
