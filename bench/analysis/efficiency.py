"""Student against teacher: what distillation buys at inference (LEADER, arXiv 2402.02803, reports the
student 25-30x faster than its teacher on GPU, with about 1/15 of the memory).

A student is any run whose model declares a teacher (bench.protocol.TeacherSpec): run.json's
`teacher` names the teacher model and the run it distilled from. The student is paired with that run
when it is shown, else with the latest run of the teacher model (runs written before `teacher`
existed: the teacher model of the registry entry, the run named by
`fit.notes.distillation.teacher.run_id`). For each pair on a dataset, the ratios student / teacher
of throughput (same batch size and test samples required), batch-1 latency (teacher / student), parameters and peak resident memory, from run.json
alone. Peak memory is the whole `bench run` process's high-water mark (data, training and model).
A student is paired with the teacher of its own source (user runs with user runs, committed reference
runs with reference runs, bench.analysis.reference). A batch-1 latency below the timer resolution (null in
run.json, bench.timing) gives no latency speed-up, and the row's note says so.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from bench.analysis.reference import base_model, source
from bench.registry import models
from bench.seed_groups import split_seed_of
from bench.timing import timing_version


@dataclass(frozen=True)
class Efficiency:
    dataset: str
    student: str
    teacher: str                       # the teacher's model name
    speedup_throughput: float | None   # student samples/s over teacher samples/s
    speedup_latency: float | None      # teacher p50 ms over student p50 ms
    params_ratio: float | None         # teacher parameters over student parameters
    memory_ratio: float | None         # teacher peak RSS over student peak RSS
    note: str = ""


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if numerator is None or denominator in (None, 0):
        return None
    return float(numerator) / float(denominator)


def teacher_of(record: dict[str, Any]) -> tuple[str | None, str | None] | None:
    """(teacher model, teacher run id) of a student run; None for a run of a model without a teacher.
    The run id is None when the run did not distil. Runs written before run.json's `teacher` take the
    teacher model from the model's registry entry (bench.plugins.ModelEntry.teacher) and the run id
    from `fit.notes.distillation.teacher.run_id`."""
    entry = record.get("teacher")
    if entry:
        return entry.get("model"), entry.get("run_id")
    legacy = (((record.get("fit") or {}).get("notes") or {}).get("distillation") or {}).get("teacher") or {}
    registered = models().get(base_model(record))
    model = registered.teacher if registered is not None and registered.teacher else None
    if model is None and not legacy.get("run_id"):
        return None
    return model, legacy.get("run_id")


def distilled(record: dict[str, Any]) -> bool:
    """True when the run distilled from a teacher (which it then loaded or trained)."""
    entry = record.get("teacher") or {}
    return bool(entry.get("distilled") or (record.get("fit") or {}).get("notes", {}).get("distillation"))


def efficiency_rows(runs: list[dict[str, Any]]) -> list[Efficiency]:
    """One row per (dataset, student) whose teacher has a run on the same dataset and source; `runs`
    as `bench.results.latest_runs` returns them (one per model and dataset)."""
    by_key = {(r["dataset"]["name"], source(r), base_model(r)): r for r in runs}
    by_run = {(r["dataset"]["name"], source(r), r.get("run_id")): r for r in runs}
    rows = []
    for (dataset, origin, model), student in sorted(by_key.items()):
        wanted = teacher_of(student)
        if wanted is None:
            continue
        teacher = by_run.get((dataset, origin, wanted[1])) if wanted[1] else None
        teacher = teacher or (by_key.get((dataset, origin, wanted[0])) if wanted[0] else None)
        if teacher is None or teacher is student:
            continue
        s, t = student.get("timing", {}), teacher.get("timing", {})
        same_batch = s.get("throughput_batch_size") == t.get("throughput_batch_size")
        same_test = student["dataset"].get("n_test") == teacher["dataset"].get("n_test") \
            and student["dataset"].get("hash") == teacher["dataset"].get("hash") \
            and split_seed_of(student) == split_seed_of(teacher)
        comparable = same_batch and same_test
        notes = [] if comparable else ["speed not comparable: different batch size or test samples"]
        if timing_version(student) != timing_version(teacher):
            notes.append(f"timed by different methods (timing version {timing_version(student)} for the student, "
                         f"{timing_version(teacher)} for the teacher)")
        below = [who for who, timing in (("student", s), ("teacher", t)) if timing.get("latency_below_resolution")]
        if below:
            notes.append(f"no latency speed-up: the {' and '.join(below)}'s batch-1 latency is below the timer "
                         "resolution")
        if distilled(student):
            notes.append("student's peak RSS includes the teacher it loaded (or trained) for distillation")
        note = "; ".join(notes)
        rows.append(Efficiency(
            dataset=dataset, student=student["model"]["name"], teacher=base_model(teacher),
            speedup_throughput=_ratio(s.get("throughput_per_s"), t.get("throughput_per_s")) if comparable else None,
            speedup_latency=_ratio(t.get("latency_ms_p50"), s.get("latency_ms_p50")) if comparable else None,
            params_ratio=_ratio(t.get("n_params"), s.get("n_params")),
            memory_ratio=_ratio(t.get("peak_rss_mb"), s.get("peak_rss_mb")),
            note=note))
    return rows


def render_efficiency(rows: list[Efficiency], fmt: str) -> str:
    """Markdown-like lines for every format but csv (which gets comma-separated values)."""
    if not rows:
        return ""
    def cell(x: float | None) -> str:
        return "n/a" if x is None else f"{x:,.1f}x"
    header = ["dataset", "student", "throughput speed-up", "latency speed-up", "teacher/student params",
              "teacher/student peak RSS", "note"]
    body = [[r.dataset, r.student, cell(r.speedup_throughput), cell(r.speedup_latency),
             cell(r.params_ratio), cell(r.memory_ratio), r.note] for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *body])
        return out.getvalue()
    teachers = ", ".join(sorted({r.teacher for r in rows}))
    lines = [f"student vs {teachers} (same test samples and batch size; from run.json):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines) + "\n"
