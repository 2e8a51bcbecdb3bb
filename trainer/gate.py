"""The gate's verdict on a candidate adapter, in words that name the figures: it must reach the floor on the
mean and on every kind of task (scored on enough held-out examples to tell), on a replay of the company's own
completed jobs, and beat what the company is served now. An unscored candidate never passes."""

from __future__ import annotations

from trainer.evaluate import kinds


def rejection(candidate: dict[str, float], current: dict[str, float], floor: float, min_kind_examples: int = 1
              ) -> str | None:
    """Why the gate holds a candidate back, in words that name the figures; None when it passes. Every kind of
    task must reach the floor on enough held-out examples to tell: a good mean can hide a kind always wrong."""
    if "exact_match" not in candidate:
        return "gate_unavailable: the candidate was never scored (the gate could not reach vLLM), so it is not served"
    exact, served = candidate.get("exact_match", 0.0), current.get("exact_match", 0.0)
    if exact < floor:
        return (f"below_floor: exact match {exact:.3f} is under the floor {floor:.3f} (CDA_TRAINER_MIN_EXACT_MATCH); "
                f"an adapter that miscopies this often is unfit for automation")
    scored = kinds(candidate)
    if not scored:
        return "unscored: the evaluation recorded no per-kind figures, so no kind of task is known to reach the floor"
    small = {k: n for k, (_, n) in scored.items() if n < min_kind_examples}
    if small:
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(small.items()))
        return (f"too_few_to_score: held-out examples per kind {listed} are under the {min_kind_examples} needed to "
                f"score a kind (CDA_TRAINER_MIN_KIND_EXAMPLES); send more examples of those tasks")
    low = {k: e for k, (e, _) in scored.items() if e < floor}
    if low:
        listed = ", ".join(f"{k} {e:.3f}" for k, e in sorted(low.items(), key=lambda kv: kv[1]))
        return f"kind_below_floor: exact match of {listed} is under the floor {floor:.3f} (CDA_TRAINER_MIN_EXACT_MATCH)"
    replayed = int(candidate.get("replay_examples", 0))
    if replayed >= min_kind_examples and candidate.get("replay_exact", 0.0) < floor:
        return (f"replay_below_floor: exact match {candidate.get('replay_exact', 0.0):.3f} on {replayed} held-out completed "
                f"jobs of the company, replayed in their recorded context, is under the floor {floor:.3f}")
    if not beats(candidate, current):
        return f"not_better: exact match {exact:.3f} does not beat the served model's {served:.3f}"
    return None


def beats(candidate: dict[str, float], current: dict[str, float]) -> bool:
    """A candidate is announced only when its exact tool-call accuracy beats what is served now."""
    return candidate.get("exact_match", 0.0) > current.get("exact_match", 0.0)
