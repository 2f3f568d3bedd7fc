"""The worlds a spec can run in: the demo world (generated problems with known step truth, a
word-level tokenizer and tiny models built locally) and the real one (GSM8K, MATH, Hugging Face
models)."""
