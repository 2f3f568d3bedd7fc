"""Deciding what is correct: where a final answer is (`answers`), whether two answers are equal
(`equivalence`), the per-world judge the stages call (`judge`), and the demo world's exact
step-level checker (`demo_checker`)."""
