"""Family instruct (seed 003): an instruction-tuned chat model, fine-tuned (LoRA, QLoRA on GPU, or fully) to answer
three questions about a window of text: its chemicals, its diseases, its chemical-induced-disease (CID) pairs
(`model.instruct.tasks`, one example per task and window, mixed into one run and one adapter).

Each example is a conversation (a fixed system message, the task's instruction and the text) rendered with the
model's own chat template; the loss reads the assistant's answer only (`CausalLmFamily.features` masks the prompt).
One answer format for every task (ner_ray.data.instruct): items separated by "; ", a CID pair as "chemical |
disease", "none" for nothing; the parsers never raise.

Scores, all from the answers alone (the model never sees gold): strict span F1 (each listed mention placed at every
occurrence in the text on word boundaries, comparable with the encoder families), mention-set F1 per document
(normalised strings, the protocol generative NER papers report), CID pair F1 per document (names mapped to concept
ids through the gold document's own mentions at scoring time, as BC5CDR's CID task compares id pairs; a name that
maps to no concept makes its pair a false positive, `cid_unmapped_rate`), and invalid, hallucinated (items not in
the text), duplicate and truncated rates.

Training path: our collator on the one HF Trainer (CausalLmFamily), not TRL's SFTTrainer. SFTTrainer's completion-
only loss would do the masking we already do in `features`, but it brings its own Trainer subclass, dataset
preparation and packing, which would make a second training loop beside the one every family runs under Ray Train
(callbacks, evaluation plan, checkpoint reporting, DeepSpeed); the masking is ten lines here and is tested.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from ner_ray.config import StudyConfig
from ner_ray.data.chunking import Window
from ner_ray.data.document import Document, Span
from ner_ray.data.instruct import (
    CHEMICAL,
    DISEASE,
    align_mentions,
    build_instruct_examples,
    concept_ids,
    concepts_by_name,
    normalise,
    parse_cid_pairs,
    parse_entity_list,
    task_prompt,
)
from ner_ray.families.base import Example
from ner_ray.families.generative import CausalLmFamily, rate
from ner_ray.metrics import EntityCounts, count_sets

SYSTEM = "You are a biomedical text-mining assistant. Answer with the requested list only."
TASK_TYPES = {"chemicals": CHEMICAL, "diseases": DISEASE}  # the entity type each entity task lists
CID = "cid"
CID_RELATION = "CID"  # BC5CDR's relation type: (chemical id, disease id)
TEMPLATE_DATE = "26 Jul 2024"  # Llama 3.x templates write today's date into the system turn: fixed, so prompts never drift
UNWRITABLE = (";", "|", "\n")  # a mention holding one cannot be listed in the answer format


class Instruct(CausalLmFamily):
    """Conversation → answer list, per task, on a chat model with its chat template."""

    name = "instruct"
    metric_names = ("mention_f1", "cid_f1", "cid_unmapped_rate", "invalid_rate", "hallucination_rate", "duplicate_rate",
                    "truncated_rate")

    def __init__(self, config: StudyConfig, types: tuple[str, ...] | list[str], tokenizer: Any = None):
        options = config.model.instruct
        self.tasks = tuple(options.tasks)
        listed = {TASK_TYPES[task] for task in self.tasks if task in TASK_TYPES}
        super().__init__(config, [t for t in types if t in listed], tokenizer)  # scored on the types its tasks list
        self.max_new_tokens = options.max_new_tokens
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model.family instruct writes conversations with the model's chat template, and model.name "
                             f"{config.model.name!r} has none: use an instruction-tuned model (smollm2-135m, "
                             "llama-3.2-3b-instruct)")

    # ------------------------------------------------------------------------------------------ prompts
    def conversation(self, text: str, task: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task_prompt(task, text)}]

    def prompt(self, text: str, task: str | None = None) -> str:
        """The conversation for `task` (default: the first of model.instruct.tasks) rendered up to the assistant's
        answer: what training reads before its target, and what a client's chat request renders to."""
        return self.chat_prompt(self.conversation(text, task or self.tasks[0]))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """As the base renders it, with the date a Llama 3.x template writes fixed (training's, served chats alike)."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                  date_string=TEMPLATE_DATE)

    def empty_prompts(self) -> list[str]:
        return [self.prompt("", task) for task in self.tasks]

    def prompt_ids(self, prompt: str) -> list[int]:
        """A rendered conversation's tokens: the template writes the model's own begin-of-text token, so none is added."""
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    # ----------------------------------------------------------------------------------------- features
    def examples(self, window: Window, doc: Document | None = None) -> list[Example]:
        return [self.encode(window, doc, task) for task in self.tasks]

    def encode(self, window: Window, doc: Document | None = None, task: str | None = None) -> Example:
        """One task's example of a window (default: the first task). The answer lists the window's gold: its mentions,
        or its CID pairs (the document's relations whose both concepts are mentioned in the window)."""
        task = task or self.tasks[0]
        relations = list(doc.relations) if doc is not None else []
        view = Document(window.doc_id, window.text, list(window.spans), relations)
        answer = build_instruct_examples(view, [task])[0].completion
        lost = 0
        if task in TASK_TYPES:  # mentions the answer format cannot carry (the parser would split them)
            lost = sum(1 for s in window.spans if s.type == TASK_TYPES[task] and any(c in view.mention(s) for c in UNWRITABLE))
        return Example(window, self.features(self.prompt(window.text, task), answer), {"task": task}, misaligned=lost)

    def build(self) -> nn.Module:
        return self.build_lm()

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return self.lm_loss(model, batch)[:2]

    def decode(self, model: nn.Module, outputs: dict[str, Any], batch: dict[str, Any]) -> Any:
        return self.lm_rows(model, outputs, batch)

    # ------------------------------------------------------------------------------------------ reading rows
    def answer(self, example: Example, row: Any) -> dict[str, Any]:
        """What one answer says: its task, mentions (entity tasks) or pairs (cid), the items counted by kind
        (empty, malformed, duplicate, hallucinated: a name not in the window's text), whether it was generated and
        whether max_new_tokens cut it."""
        text, truncated = self.output_text(row)
        task, invalid = example.decoding["task"], Counter()
        info: dict[str, Any] = {"task": task, "greedy": self.generated(row), "truncated": truncated}
        if task == CID:
            pairs = parse_cid_pairs(text, invalid)
            invalid["hallucinated"] += sum(1 for pair in pairs if align_mentions(pair, example.window.text, "")[1])
            info["pairs"] = [list(pair) for pair in pairs]
            valid = len(pairs)
        else:
            names = parse_entity_list(text, invalid)
            invalid["hallucinated"] += len(align_mentions(names, example.window.text, "")[1])
            info["mentions"] = names
            valid = len(names)
        info["items"] = valid + invalid["empty"] + invalid["malformed"] + invalid["duplicate"]
        info["invalid"] = dict(invalid)
        return info

    def spans(self, example: Example, row: Any) -> list[Span]:
        """The answer's mentions at every occurrence in the window (none for the cid task)."""
        task = example.decoding["task"]
        if task not in TASK_TYPES:
            return []
        return align_mentions(self.answer(example, row)["mentions"], example.window.text, TASK_TYPES[task])[0]

    def window_info(self, example: Example, row: Any) -> dict[str, Any]:
        return self.answer(example, row)

    # ------------------------------------------------------------------------------------------------ scores
    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        """Item rates over every answer; mention-set F1 (per type too) for the entity tasks; CID F1 for cid."""
        answers = [w for doc in predicted for w in doc.meta.get("windows", []) if "task" in w]
        invalid = sum((Counter(w["invalid"]) for w in answers), Counter())
        items = sum(w["items"] for w in answers)
        metrics = {
            "invalid_rate": rate(invalid, ("empty", "malformed"), items),
            "hallucination_rate": rate(invalid, ("hallucinated",), items),
            "duplicate_rate": rate(invalid, ("duplicate",), items),
            "truncated_rate": sum(bool(w["truncated"]) for w in answers) / len(answers) if answers else 0.0,
            "generated_items": float(items),
        }
        entity_tasks = [task for task in self.tasks if task in TASK_TYPES and TASK_TYPES[task] in self.types]
        if entity_tasks:
            metrics.update(self.mention_scores(gold, predicted, entity_tasks))
        if CID in self.tasks:
            metrics.update(self.cid_scores(gold, predicted))
        return metrics

    @staticmethod
    def mention_scores(gold: list[Document], predicted: list[Document], tasks: list[str]) -> dict[str, float]:
        """Mention-set scores: per document and type, the normalised gold mention strings against the listed ones."""
        counts = EntityCounts()
        for gold_doc, doc in zip(gold, predicted):
            windows = doc.meta.get("windows", [])
            for task in tasks:
                span_type = TASK_TYPES[task]
                truth = {normalise(gold_doc.mention(s)) for s in gold_doc.spans if s.type == span_type}
                listed = {normalise(m) for w in windows if w.get("task") == task for m in w["mentions"]}
                counts = counts + count_sets(truth, listed - {""}, span_type)
        micro = counts.prf()
        scores = {"mention_f1": micro.f1, "mention_precision": micro.precision, "mention_recall": micro.recall}
        scores.update({f"mention_f1_{t}": counts.prf(t).f1 for t in counts.types})
        return scores

    @staticmethod
    def cid_scores(gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        """CID pair scores per document, as concept-id pairs: each listed name mapped through the gold document's
        own mentions of its type (exact, then normalised); a pair with a name that maps to nothing is a false positive."""
        counts, listed, unmapped_total = EntityCounts(), 0, 0
        for gold_doc, doc in zip(gold, predicted):
            pairs = {tuple(p) for w in doc.meta.get("windows", []) if w.get("task") == CID for p in w["pairs"]}
            chemicals, diseases = concepts_by_name(gold_doc, CHEMICAL), concepts_by_name(gold_doc, DISEASE)
            ids: set[tuple[str, str]] = set()
            unmapped = 0
            for chemical, disease in pairs:
                heads, tails = concept_ids(chemical, chemicals), concept_ids(disease, diseases)
                if heads and tails:
                    ids.update((h, t) for h in heads for t in tails)
                else:
                    unmapped += 1
            truth = {(r.head, r.tail) for r in gold_doc.relations if r.type == CID_RELATION}
            counts = counts + count_sets(truth, ids, CID_RELATION, unmapped)
            listed, unmapped_total = listed + len(pairs), unmapped_total + unmapped
        prf = counts.prf()
        return {"cid_f1": prf.f1, "cid_precision": prf.precision, "cid_recall": prf.recall,
                "cid_unmapped_rate": unmapped_total / listed if listed else 0.0}

    def combined_config(self, configs: list[StudyConfig]) -> StudyConfig:
        """A combination of task adapters answers every task any of them was trained on."""
        tasks = list(dict.fromkeys(task for config in configs for task in config.model.instruct.tasks))
        return self.config.with_updates({"model.instruct.tasks": tasks})

    # ------------------------------------------------------------------------------------------ save / load
    def save(self, model: nn.Module, directory: Path) -> dict[str, Any]:
        return {"weights": self.save_lm(model, directory)}

    def load(self, directory: Path, saved: dict[str, Any]) -> nn.Module:
        return self.load_lm(directory, saved["weights"]).eval()
