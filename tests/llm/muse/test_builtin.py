"""The built-in mini-MUSE's cache: a folder per setting, and a new one when the generator's output changes."""

from simnpo.llm.muse import builtin
from simnpo.llm.muse.mini import MiniMuseConfig

SMALL = MiniMuseConfig(forget=2, retain1=2, retain2=2, holdout=2, icl=2, quiz_repeats=1)


def test_a_generator_revision_makes_a_new_cache_folder(tmp_path, monkeypatch):
    first = builtin.mini_muse(tmp_path, SMALL)
    assert builtin.mini_muse(tmp_path, SMALL).root == first.root  # the same settings reuse the folder
    monkeypatch.setattr(builtin, "GENERATOR_REVISION", builtin.GENERATOR_REVISION + 1)
    second = builtin.mini_muse(tmp_path, SMALL)
    assert second.root != first.root and (second.data / "raw" / "forget.json").is_file()
