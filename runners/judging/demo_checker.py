"""Step-level checker for demo-world solutions.

A solution is a sequence of steps separated by ";" and an "answer X" part. A step is
`operand op operand = NAME value`, where an operand is a number ("7"), or an unknown or a
constant with its value ("B 4", "c17 7"). It is valid when NAME is a defined unknown not
computed before, the operands are its definition (either order for + and *), every unknown it
uses is already known (computed in an earlier step), the values written after them are their
true values, and `value` is NAME's true value. Computing an unneeded unknown is a valid step:
one of the world's optional paths.

An answer is `correct` when it equals the gold answer, and a `false_positive` when it is
correct but the reasoning is not: some step is wrong, or the asked unknown was never validly
computed.

Pure Python, so the verify stage and the tests need no torch.
"""

from __future__ import annotations

from typing import Any

from runners.worlds.demo import COMMUTATIVE, OPERATORS, STEP_SEPARATOR, is_number


def check_solution(problem: dict[str, Any], text: str) -> dict[str, Any]:
    """Judge `text` (a completion, without the prompt) against `problem`'s step truth."""
    definitions: dict[str, list[str]] = problem["definitions"]
    values: dict[str, int] = problem["values"]
    # Constants (c17) are known from the start: a step that uses one writes its value after it.
    known: set[str] = set(problem.get("constants", ()))
    valid_names: set[str] = set()
    steps_valid: list[bool] = []
    equations: list[str] = []
    answer: str | None = None

    for piece in text.split(STEP_SEPARATOR):
        tokens = piece.split()
        if not tokens:
            continue
        if tokens[0] == "answer":
            answer = tokens[1] if len(tokens) == 2 else None
            break
        step = parse_step(tokens)
        ok = step is not None and _step_is_valid(step, definitions, values, known)
        steps_valid.append(ok)
        equations.append(" ".join(tokens))
        if step is not None and step["name"] in definitions:
            # Stated, right or wrong: later steps may use it. Their values are checked against
            # the truth, so a slip here is not counted again in every later step.
            known.add(step["name"])
            if ok:
                valid_names.add(step["name"])

    correct = answer is not None and answer == problem["answer"]
    complete = problem["target"] in valid_names
    first_wrong = next((i for i, ok in enumerate(steps_valid) if not ok), None)
    return {
        "answer": answer,
        "correct": correct,
        "steps_valid": steps_valid,
        "first_wrong_step": first_wrong,
        "complete": complete,
        "false_positive": correct and (first_wrong is not None or not complete),
        "equations": equations,
    }


def parse_step(tokens: list[str]) -> dict[str, Any] | None:
    """`x [vx] op y [vy] = NAME value` as a dict, or None when it is not of that shape."""
    operands: list[tuple[str, int | None]] = []
    i = 0
    for _ in range(2):
        if i >= len(tokens):
            return None
        if is_number(tokens[i]):
            operands.append((tokens[i], int(tokens[i])))
            i += 1
        elif i + 1 < len(tokens) and is_number(tokens[i + 1]):
            operands.append((tokens[i], int(tokens[i + 1])))
            i += 2
        else:
            return None
        if len(operands) == 1:
            if i >= len(tokens) or tokens[i] not in OPERATORS:
                return None
            op = tokens[i]
            i += 1
    rest = tokens[i:]
    if len(rest) != 3 or rest[0] != "=" or not is_number(rest[2]):
        return None
    return {"operands": operands, "op": op, "name": rest[1], "value": int(rest[2])}


def _step_is_valid(
    step: dict[str, Any],
    definitions: dict[str, list[str]],
    values: dict[str, int],
    known: set[str],
) -> bool:
    name = step["name"]
    if name not in definitions or name in known:
        return False
    true_op, left, right = definitions[name]
    (x, vx), (y, vy) = step["operands"]
    if step["op"] != true_op:
        return False
    if (x, y) != (left, right) and not (true_op in COMMUTATIVE and (x, y) == (right, left)):
        return False
    for operand, value in ((x, vx), (y, vy)):
        if not is_number(operand) and (operand not in known or values[operand] != value):
            return False
    return step["value"] == values[name]


def path_key(problem: dict[str, Any], text: str) -> tuple[str, ...]:
    """The sequence of equations a solution states: two solutions with equal keys are one path."""
    return tuple(check_solution(problem, text)["equations"])
