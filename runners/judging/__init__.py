"""Deciding what is correct: the per-world judge the stages call (`judge`); for real worlds,
where a final answer is (`answers`, with the text rewrites of `answer_text`), what counts as the
same answer (`conventions`) and the verifier that compares them (`equivalence`: a pool of
`workers` each running a `comparison`); for the demo world, its exact step-level checker
(`demo_checker`)."""
