"""The LEADER plug-in (Liu et al., arXiv 2402.02803): its models and its CLI verbs, by registry string
(bench.plugins). Cheap to import: nothing here loads torch or transformers."""

from __future__ import annotations

from bench.plugins import ModelEntry, Plugin, Verb

PAPER = "Liu et al., arXiv 2402.02803"

PLUGIN = Plugin(
    name="leader",
    models=(
        ModelEntry("plain-llm", "leader.plain_llm:PlainLLM",
                   "a generating LLM reads LEADER's prompt and writes class names, matched to ATC3 (hard predictions)",
                   f"LLM baseline of {PAPER}"),
        ModelEntry("leader-teacher", "leader.teacher:LeaderTeacher",
                   "LEADER(T): LLM (LoRA) over the patient prompt, last-token state -> drug output layer", PAPER),
        ModelEntry("leader-student", "leader.student:LeaderStudent",
                   "LEADER(S): transformers over visits, profile prompt, feature distillation from leader-teacher",
                   PAPER, teacher="leader-teacher"),
        ModelEntry("leader-student-nokd", "leader.student:LeaderStudentNoKD",
                   "LEADER(S) without distillation (profile alignment kept): the no-KD ablation", PAPER,
                   teacher="leader-teacher"),
    ),
    verbs=(
        Verb("prompts", "leader.cli.prompts:prompts"),
        Verb("teacher-probe", "leader.cli.probe:teacher_probe"),
    ),
)
