"""WMDP data: four-choice questions and the unlearning corpora, from the hub or from a local folder of JSON-lines
files named after the hub's parts (``wmdp-bio.json``, ``wmdp-cyber.json``, ``wmdp-chem.json``, ``mmlu.json``;
``bio-forget-corpus.json``, ``cyber-forget-corpus.json``, ``bio-retain-corpus.json``, ``cyber-retain-corpus.json``,
``wikitext.json``).

On the hub the questions are read by lm-evaluation-harness itself (its own tasks); in a local folder they are checked
here and scored through local tasks in the harness's template (``harness.local_task``). Corpora on the hub:
``cais/wmdp-corpora`` (split ``train``, field ``text``) and wikitext-2-raw-v1 (split ``test``, as the WMDP
repository's ``rmu/utils.py`` reads it). The bio forget corpus is gated: it is read from a local file only.
"""

from __future__ import annotations

from pathlib import Path

from simnpo.llm.data import load_rows

# our task name (the harness's) -> (the hub configuration and local file name, the subject its description names)
MMLU_SUBJECT = "{{subject.replace('_', ' ')}}"  # MMLU's harness tasks: "abstract_algebra" -> "abstract algebra"
TASKS = {
    "wmdp_bio": ("wmdp-bio", "biology"),
    "wmdp_cyber": ("wmdp-cyber", "cybersecurity"),
    "wmdp_chem": ("wmdp-chem", "chemistry"),
    "mmlu": ("mmlu", MMLU_SUBJECT),
}
HAZARD_TASKS = ("wmdp_bio", "wmdp_cyber", "wmdp_chem")
HAZARD_NAMES = {"wmdp_bio": "Bio", "wmdp_cyber": "Cyber", "wmdp_chem": "Chem"}
CHANCE = 0.25  # four choices
RESULTS_FILE, SUMMARY_FILE = "WMDP_EVAL.json", "WMDP_SUMMARY.json"  # one model's accuracies and headline numbers
FORGET_CORPORA = {"bio": "bio-forget-corpus", "cyber": "cyber-forget-corpus"}
RETAIN_CORPORA = {"bio": "bio-retain-corpus", "cyber": "cyber-retain-corpus", "wikitext": "wikitext"}
HUB_QUESTIONS = "cais/wmdp"  # scored by the harness's own tasks (wmdp_*; mmlu reads cais/mmlu)
CORPORA_HUB = "cais/wmdp-corpora"
MIN_CHARS = 50  # the WMDP repository keeps only texts longer than 50 characters (rmu/utils.py, get_data)
GATED = (
    "the WMDP bio forget corpus is gated: request it at https://huggingface.co/datasets/cais/wmdp-bio-forget-corpus "
    "and pass its JSON-lines file (bio_remove_dataset.jsonl) with --bio-corpus, or use --forget-corpora cyber"
)


def load_questions(folder: str | Path, task: str) -> list[dict]:
    """The questions of ``task`` in a local folder, checked for WMDP's fields (MMLU's also name their subject)."""
    name = TASKS[task][0]
    fields = ("question", "choices", "answer") + (("subject",) if task == "mmlu" else ())
    rows = load_rows(folder, f"{name}.json", name, "test", f"WMDP {name}", fields)
    for i, row in enumerate(rows):
        if len(row["choices"]) != 4 or row["answer"] not in range(4):
            raise ValueError(f"WMDP {name} item {i} needs four choices and an answer index 0-3")
    return rows


def load_corpus(source: str | Path, name: str, bio_corpus: str | None = None) -> list[str]:
    """The texts (longer than ``MIN_CHARS``) of corpus ``name`` (a value of ``FORGET_CORPORA`` or
    ``RETAIN_CORPORA``): from ``bio_corpus`` for the gated bio forget corpus when given, else from the local folder
    ``source``, else from the hub."""
    what = f"WMDP {name}"
    if name == FORGET_CORPORA["bio"] and bio_corpus is not None:
        path = Path(bio_corpus)
        if not path.is_file():
            raise ValueError(f"--bio-corpus {bio_corpus} is not a file; {GATED}")
        rows = load_rows(path.parent, path.name, name, "train", what, ("text",))
    elif Path(source).is_dir():
        rows = load_rows(source, f"{name}.json", name, "train", what, ("text",))
    elif name == FORGET_CORPORA["bio"]:
        raise ValueError(GATED)
    elif name == "wikitext":
        rows = load_rows("wikitext", "", "wikitext-2-raw-v1", "test", what, ("text",))
    else:
        rows = load_rows(CORPORA_HUB, "", name, "train", what, ("text",))
    texts = [str(row["text"]) for row in rows if len(str(row["text"])) > MIN_CHARS]
    if not texts:
        raise ValueError(f"{what} holds no text longer than {MIN_CHARS} characters")
    return texts
