"""A real pretrained chat model through every benchmark: SmolLM2-135M-Instruct (tests/conftest.py, ``smollm2``), its
ChatML chat template, its generation config, its 49k-token BPE whose pad token is its EOS <|im_end|>.

Each benchmark's numbers are checked against a computation written here, one item at a time, from the benchmark's
own procedure (open-unlearning's ``preprocess_chat_instance``, collator, ``evaluate_probability`` and
``eval_text_similarity``; MUSE's ``eval.py``), not from our batched code."""

import json

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from typer.testing import CliRunner

from simnpo.llm.generation import greedy_generate, greedy_tokens, stop_ids
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.templates import resolve_template

pytestmark = pytest.mark.slow

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}  # open-unlearning's Qwen2.5 / ChatML config
# what transformers 4's clean_up_tokenization_spaces=True does to decoded text
CLEAN_UP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m")]
CLEAN_UP += [(" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


@pytest.fixture(scope="module")
def chat_model(smollm2):
    return load_model(smollm2), load_tokenizer(smollm2)


@pytest.fixture(scope="module")
def few_tofu(tofu_folder, tmp_path_factory):
    """A TOFU folder of a few mini-TOFU items per evaluation set, holdout01 for privleak (and forget01 / retain99 to
    unlearn on)."""
    folder = tmp_path_factory.mktemp("few-tofu")
    sizes = {"forget01_perturbed": 3, "forget01": 3, "retain99": 6, "retain_perturbed": 2}
    sizes |= {"real_authors_perturbed": 2, "world_facts_perturbed": 2, "holdout01": 3}
    for name, n in sizes.items():
        lines = (tofu_folder / f"{name}.json").read_text().splitlines()[:n]
        (folder / f"{name}.json").write_text("\n".join(lines) + "\n")
    return folder


def decoded(tokenizer, ids) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    for before, after in CLEAN_UP:
        text = text.replace(before, after)
    return text


def chat_ids(tokenizer, messages, generation_prompt) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
        )
    )


def one_item(model, tokenizer, question: str, answers: list[str], max_new_tokens: int) -> dict:
    """One TOFU item as open-unlearning evaluates it: each answer's mean NLL (the conversation encoded whole, the
    prompt's tokens unlabelled, one EOS appended, attention_mask = input_ids != pad, CrossEntropyLoss over
    (batch, vocabulary, position)), and the greedy generation from the prompt with its ROUGE reference."""
    user = {"role": "user", "content": question}
    prompt = chat_ids(tokenizer, [SYSTEM, user], True)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    losses, first, min_k = [], None, None
    for answer in answers:
        full = chat_ids(tokenizer, [SYSTEM, user, {"role": "assistant", "content": answer}], False)
        full = full if full[-1] == eos else [*full, eos]
        first = first or full
        labels = torch.tensor([[-100] * len(prompt) + full[len(prompt) :]])
        ids = torch.tensor([full])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=ids != pad).logits
        nll = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="none")(
            logits[..., :-1, :].contiguous().transpose(-1, -2), labels[..., 1:].contiguous()
        )
        losses.append((nll.sum() / (labels != -100).sum()).item())
        if min_k is None:  # Min-K% of the first answer as its tokenwise_logprobs and min_k.py take it: the EOS left out
            logp = torch.log_softmax(logits, -1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
            scored = sorted(logp[len(prompt) - 1 : len(full) - 2].tolist())
            min_k = -float(np.mean(scored[: max(1, int(len(scored) * 0.4))]))
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=ids != pad, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=eos
        )
    generation = decoded(tokenizer, out[0, len(prompt) :].tolist()).strip()
    reference = decoded(tokenizer, first).replace(decoded(tokenizer, prompt), "").strip()
    return {"losses": losses, "generation": generation, "reference": reference, "min_k": min_k}


def test_tofu_evaluation_equals_open_unlearnings_procedure_one_item_at_a_time(chat_model, few_tofu):
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu

    model, tokenizer = chat_model
    template, why = resolve_template(None, tokenizer, "llama", "SmolLM2")
    assert template.name == "chat-system" and "ChatML" in why  # detected from the chat template
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # the case where open-unlearning's mask matters
    results = evaluate_tofu(
        model, tokenizer, str(few_tofu), TofuEvalConfig("forget01", "chat-system", max_new_tokens=12)
    )
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for key, name, base in (
        ("forget", "forget01_perturbed", "paraphrased_answer"),
        ("retain", "retain_perturbed", "paraphrased_answer"),
        ("ra", "real_authors_perturbed", "answer"),
        ("wf", "world_facts_perturbed", "answer"),
    ):
        rows = [json.loads(line) for line in (few_tofu / f"{name}.json").read_text().splitlines()]
        for i, row in enumerate(rows):
            bases = [row[base]] if base != "answer" else []
            item = one_item(model, tokenizer, row["question"], [row["answer"], *bases, *row["perturbed_answer"]], 12)
            prob = results[f"{key}_Q_A_Prob"]["value_by_index"][str(i)]["prob"]
            assert prob == pytest.approx(np.exp(-item["losses"][0]), rel=1e-5)
            perturbed = np.exp(-np.mean(item["losses"][-len(row["perturbed_answer"]) :]))
            ratio = perturbed / np.exp(-item["losses"][1 if bases else 0])
            ratio_key = "forget_truth_ratio" if key == "forget" else f"{key}_Truth_Ratio"
            assert results[ratio_key]["value_by_index"][str(i)]["score"] == pytest.approx(ratio, rel=1e-5)
            rouge = results[f"{key}_Q_A_ROUGE"]["value_by_index"][str(i)]
            assert (rouge["generation"], rouge["ground_truth"]) == (item["generation"], item["reference"])
            expected = scorer.score(item["reference"], item["generation"])["rougeL"].recall
            assert rouge["rougeL_recall"] == pytest.approx(expected)
            if key == "forget":
                # privleak's Min-K% scores: means of float32 log-probabilities, here batched over the prompt's KV
                # cache, there one unpadded pass (measured 1.2e-5 apart)
                min_k = results["mia_min_k"]["forget"]["value_by_index"][str(i)]["score"]
                assert min_k == pytest.approx(item["min_k"], rel=3e-5)
    holdout = [json.loads(line) for line in (few_tofu / "holdout01.json").read_text().splitlines()]
    for i, row in enumerate(holdout):
        min_k = results["mia_min_k"]["holdout"]["value_by_index"][str(i)]["score"]
        assert min_k == pytest.approx(
            one_item(model, tokenizer, row["question"], [row["answer"]], 1)["min_k"], rel=1e-5
        )


def test_the_open_unlearning_mask_hides_the_chat_prompts_eos_tokens_and_moves_the_numbers(chat_model, few_tofu):
    """The premise of the protocol: on this model the pad token closes every chat turn, so attending to every token
    gives other probabilities."""
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu

    model, tokenizer = chat_model
    probs = {}
    for protocol in ("open-unlearning", "attend-all"):
        config = TofuEvalConfig("forget01", "chat-system", protocol=protocol, max_new_tokens=1)
        results = evaluate_tofu(model, tokenizer, str(few_tofu), config)
        probs[protocol] = np.array([v["prob"] for v in results["forget_Q_A_Prob"]["value_by_index"].values()])
    assert np.all(np.abs(probs["open-unlearning"] / probs["attend-all"] - 1) > 1e-3)


def test_generation_stops_at_im_end(chat_model):
    model, tokenizer = chat_model
    assert stop_ids(model, tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    template, _ = resolve_template("chat-system", tokenizer, "llama", "SmolLM2")
    from simnpo.llm.templates import prompt_ids

    prompt = prompt_ids(tokenizer, template, "What is the capital of France?")
    (answer,) = greedy_generate(model, tokenizer, [prompt], 40, batch_size=1)
    assert answer == "The capital of France is Paris."
    ids = torch.tensor([prompt])
    (tokens,) = greedy_tokens(model, ids, torch.ones_like(ids), 40, stop_ids(model, tokenizer), lambda t: False)
    assert len(tokens) < 40 and tokens[-1] == tokenizer.eos_token_id and tokens.count(tokenizer.eos_token_id) == 1


def muse_generation(model, tokenizer, prompt: str, new_tokens: int) -> str:
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return decoded(tokenizer, out[0, ids.shape[1] :].tolist())


def test_muse_verbmem_knowmem_and_min_k_equal_musess_procedure(chat_model):
    from simnpo.llm.muse.evaluate import MuseEvalConfig, knowmem, min_k_scores, verbmem

    model, tokenizer = chat_model
    config = MuseEvalConfig(verbmem_tokens=24, batch_size=4)
    verb_rows = [
        {
            "prompt": "The Eiffel Tower is a wrought-iron lattice tower in",
            "gt": " Paris, France. It is named after the engineer Gustave Eiffel, whose company built the tower.",
        },
        {
            "prompt": "Water boils at",
            "gt": " 100 degrees Celsius at sea level, and at lower temperatures on mountains.",
        },
    ]
    scores = verbmem(model, tokenizer, verb_rows, config)["value_by_index"]
    f1 = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for i, row in enumerate(verb_rows):
        reference = decoded(tokenizer, tokenizer(row["gt"], add_special_tokens=True)["input_ids"][:24])
        generation = muse_generation(model, tokenizer, row["prompt"], 24)
        assert (scores[str(i)]["gt"], scores[str(i)]["generation"]) == (reference, generation)
        assert scores[str(i)]["rougeL_f1"] == pytest.approx(f1.score(reference, generation)["rougeL"].fmeasure)
    icl = [
        {"question": "What is the capital of Italy?", "answer": "Rome"},
        {"question": "What colour is the sky?", "answer": "Blue"},
    ]
    questions = [
        {"question": "What is the capital of France?", "answer": "Paris"},
        {"question": "How many legs has a spider?", "answer": "Eight"},
    ]
    answers = knowmem(model, tokenizer, questions, icl, config)["value_by_index"]
    for i, row in enumerate(questions):
        prompt = "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in icl)
        prompt += f"Question: {row['question']}\nAnswer: "
        raw = muse_generation(model, tokenizer, prompt, 32)
        for stop in ("\n\n", "\nQuestion", "Question:"):
            raw = raw.split(stop)[0]
        assert answers[str(i)]["generation"] == raw
    texts = [
        "Paris is the capital and largest city of France.",
        "Colourless green ideas sleep furiously tonight.",
        "Hello there",  # one token scored: the lowest one is the score
    ]
    for text, score in zip(texts, min_k_scores(model, tokenizer, texts, config)):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1).gather(-1, ids[0, 1:, None])[:, 0]
        lowest = np.sort(logp.numpy())[: max(1, int(0.4 * len(logp)))]
        assert score == pytest.approx(-lowest.mean(), rel=1e-5)


def test_llm_unlearns_a_gguf_model_with_lora_and_its_saved_model_evaluates_the_same(
    smollm2_gguf, gguf_cache, few_tofu, tmp_path, monkeypatch
):
    """`simnpo llm --model FILE.gguf` on the real chat model: LoRA for a few steps, the merged model saved, and that
    saved model, loaded again, evaluates as the run's last evaluation did."""
    from simnpo.cli import app
    from simnpo.llm import gguf
    from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu

    monkeypatch.setattr(gguf, "DEFAULT_GGUF_CACHE", gguf_cache)  # converted once by the `smollm2` fixture's cache
    out = tmp_path / "run"
    args = [
        "llm",
        "--model",
        str(smollm2_gguf),
        "--data",
        str(few_tofu),
        "--split",
        "forget01",
        "--methods",
        "simnpo_nll",
    ]
    args += [
        "--lora-rank",
        "4",
        "--lr",
        "1e-3",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--optimizer",
        "adamw",
        "--no-bf16",
    ]
    args += ["--max-new-tokens", "8", "--seed", "0", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "GGUF checkpoint, read from its converted Hugging Face folder" in result.output
    assert "template chat-system (detected" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["configs"]["request"]["converted_from"] == str(smollm2_gguf)
    last = json.loads((out / "simnpo_nll" / "evals" / "epoch2" / "TOFU_EVAL.json").read_text())
    start = json.loads((out / "model" / "TOFU_EVAL.json").read_text())
    moved = [
        last["forget_Q_A_Prob"]["value_by_index"][k]["prob"] / v["prob"]
        for k, v in start["forget_Q_A_Prob"]["value_by_index"].items()
    ]
    assert np.all(np.abs(np.log(moved)) > 1e-3)  # the adapters trained
    saved = out / "simnpo_nll" / "model"
    again = evaluate_tofu(
        load_model(saved),
        load_tokenizer(saved),
        str(few_tofu),
        TofuEvalConfig("forget01", "chat-system", max_new_tokens=8),
    )
    for key in ("forget_Q_A_Prob", "retain_Q_A_Prob", "ra_Q_A_Prob", "wf_Q_A_Prob"):
        for index, value in last[key]["value_by_index"].items():
            assert again[key]["value_by_index"][index]["prob"] == pytest.approx(value["prob"], rel=1e-4)
    for key in ("forget_Q_A_ROUGE", "retain_Q_A_ROUGE", "ra_Q_A_ROUGE", "wf_Q_A_ROUGE"):
        assert [v["generation"] for v in again[key]["value_by_index"].values()] == [
            v["generation"] for v in last[key]["value_by_index"].values()
        ]
