"""Invented names shared by the built-in benchmarks' seeded generators (mini-TOFU's authors, mini-MUSE's news):
syllables to build names from and places, none of them real, so no pretrained knowledge applies."""

import numpy as np

SYLLABLES = "ka lo mi ra ten vos bel dar quin sha tor vel mor lin zen fa ru pe so gri nal hol ix umb ost".split()

PLACES = (
    "Valdoria",
    "Quessen",
    "Marrowick",
    "Tolvane",
    "Ostrava",
    "Belmire",
    "Darnholt",
    "Sharrow",
    "Ilvanis",
    "Corveth",
    "Nemara",
    "Halloway",
    "Rusk",
    "Pellin",
    "Zarath",
    "Elmsgate",
    "Virel",
    "Kestrow",
)


def invented_word(rng: np.random.Generator, parts: int) -> str:
    """A capitalised word of ``parts`` seeded syllables (a name, a town, a pathogen)."""
    return "".join(rng.choice(SYLLABLES, size=parts)).capitalize()
