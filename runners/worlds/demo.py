"""The demo world: seeded multi-step arithmetic problems with known step-level truth.

A problem defines unknowns from numbers and other unknowns and asks for one of them:

    prompt:   "9 - 4 = A , A * 3 = B , 7 + 2 = C , B - C = D . find D"
    solution: " 9 - 4 = A 5 ; A 5 * 3 = B 4 ; 7 + 2 = C 9 ; B 4 - C 9 = D 6 ; answer 6"

All arithmetic is modulo `modulus`, so every value is one token and answers are checked
exactly. A step restates one definition with the value of every unknown written after its
name, and ends with the new unknown's value ("= B 4"); recalling a value is copying what
followed the name's last occurrence, which a two-layer model learns quickly.

Why this shape:
- The unknowns the answer needs form a random binary tree, so independent branches can be
  computed in any order (above: A, B, C or C, A, B or A, C, B). + and * may be written in
  either operand order, and definitions the answer does not need (distractors) may be computed
  or skipped. The checker accepts all of these: later methods (RFT, distinct reasoning paths)
  need several correct solutions per problem.
- Unknowns are labelled A, B, C, ... in the order the prompt lists them, and the listing is a
  random order in which each definition can be computed in turn. The teacher follows it, so its
  step order is a random valid order while each next step is easy to find: what is learned
  from more data is arithmetic and copying, not a search.
- The step truth (each unknown's definition and value) is stored with the problem, so every
  step can be judged, and a teacher can be made to write false positives (a wrong step that
  still reaches the right answer) at a known rate.
- Problem i is a pure function of (seed, split, i): the training set of size N is a prefix of
  the one of size 2N, so data sizes compare without resampling noise.

Skills (`skills`, off unless set): named constants c0, c1, ... each stand for a fixed value,
a fact the base model does not know, and replace some of a problem's numbers:

    prompt:   "c17 * 3 = A , A + c2 = B . find B"
    solution: " c17 7 * 3 = A 10 ; A 10 + c2 5 = B 4 ; answer 4"

Constant k is drawn with probability proportional to (k + 1)^-zipf, so a learner that has to
see a constant to know its value has an error falling as a power law of the data size, with
the exponent (zipf - 1) / zipf (runners.worlds.skill_law). The pretraining corpus (splits
"pretrain" and "pretrain_val") uses other constants, p0, p1, ..., drawn uniformly, with values
of their own: a base pretrained on it knows how a constant is used and written, and none of
the c values. With `skills.names_in_pretraining`, that share of the corpus's constants are
c names valued afresh in each problem, so the base has used every c token without learning
a c value.

A shortcut (`skills.shortcut`, off unless set): in that share of the training pool, the number
beside a constant equals its value ("c17 * 7" where c17 is 7). Copying the neighbour is a rule
the teacher's correct solutions bear out on most training problems, and it fails on the others
and on about 1 in `modulus` test problems: a spurious correlation in positive data, for
per-step credit on negatives to correct. The demo's models do not take it (they memorise the
facts instead; docs/algorithms.md, "setlur-demo: results").

`DEMO` is this world as the stages see it (runners.worlds.World): its checker judges every step,
steps end at ";", and reasoning paths are the exact equations a solution computes.

Pure Python: the orchestrator imports this module to validate specs.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runners import OMITTED_WHEN_NONE
from runners.worlds import Verdicts, World

LABELS = tuple(string.ascii_uppercase)
OPERATORS = ("+", "-", "*")
COMMUTATIVE = frozenset({"+", "*"})
# Tokens of the world besides numbers and labels. "answer" opens the final line.
WORDS = ("=", ",", ".", ";", "find", "answer", "+", "-", "*")
STEP_SEPARATOR = ";"
SKILL_PREFIX = "c"
PRETRAIN_SKILL_PREFIX = "p"
PRETRAIN_SPLIT = "pretrain"


class Skills(BaseModel):
    """Named constants whose values are facts to learn (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(400, ge=1, le=100_000)
    """K: constants c0 .. c{K-1} in fine-tuning, validation and test problems."""
    zipf: float = Field(1.5, gt=1)
    """a: constant k appears with probability proportional to (k + 1)^-a."""
    per_problem: int = Field(2, ge=1)
    """Numbers of each problem replaced by a constant (each drawn independently)."""
    pretrain_count: int = Field(64, ge=1, le=100_000)
    """Constants p0 .. p{M-1} of the pretraining corpus, drawn uniformly."""
    shortcut: float | None = Field(None, ge=0.0, le=1.0, json_schema_extra=OMITTED_WHEN_NONE)
    """Share of training-pool problems in which the number beside each constant equals the
    constant's value: a spurious cue that holds on most training problems and on about 1 in
    `modulus` of the others. None: no cue."""
    names_in_pretraining: float | None = Field(
        None, ge=0.0, le=1.0, json_schema_extra=OMITTED_WHEN_NONE
    )
    """Share of the pretraining corpus's constants written as a c name with a value drawn for
    that problem alone: the base has used every c token and knows none of their values.
    None: the corpus shows p names only."""


class WorldConfig(BaseModel):
    """The knobs of the demo world; the same knobs and seed always give the same problems."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus: int = Field(11, ge=3, le=997)
    """All arithmetic is modulo this; larger means more facts to learn."""
    min_steps: int = Field(2, ge=1)
    """Fewest computation steps a problem needs."""
    max_steps: int = Field(3, ge=1)
    """Most computation steps a problem needs."""
    operators: str = "+-*"
    """Operators problems may use, a subset of '+-*'."""
    distractors: int = Field(0, ge=0)
    """Unknowns defined in the problem but not needed for the answer."""
    operand_reuse: float = Field(0.3, ge=0.0, le=1.0)
    """Probability a distractor's operand is an unknown rather than a number."""
    listing: Literal["solvable", "shuffled"] = "solvable"
    """Order of definitions in the prompt: one in which each can be computed in turn, or any."""
    teacher_order: Literal["listing", "random"] = "listing"
    """Teacher's step order: every listed definition in turn (distractors included), or a
    random valid order of the needed ones."""
    commute_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Probability the teacher writes a + or * step with its operands swapped."""
    optional_step_rate: float = Field(0.0, ge=0.0, le=1.0)
    """With teacher_order='random': probability the teacher also computes one distractor."""
    false_positive_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Probability the teacher writes a wrong intermediate result yet the right answer."""
    skills: Skills | None = Field(None, json_schema_extra=OMITTED_WHEN_NONE)
    """Named constants to learn (facts with Zipf frequencies); None: problems use numbers only."""

    @model_validator(mode="after")
    def _check_ranges(self) -> WorldConfig:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps={self.min_steps} exceeds max_steps={self.max_steps}")
        unknown = set(self.operators) - set(OPERATORS)
        if not self.operators or unknown:
            raise ValueError(
                f"operators must be a non-empty subset of '+-*', got {self.operators!r}"
            )
        if self.max_steps + self.distractors > len(LABELS):
            raise ValueError(
                f"max_steps + distractors = {self.max_steps + self.distractors} unknowns; "
                f"the world has {len(LABELS)} labels"
            )
        if self.skills and self.skills.per_problem > self.min_steps + 1:
            raise ValueError(
                f"skills.per_problem={self.skills.per_problem} exceeds the min_steps + 1 = "
                f"{self.min_steps + 1} numbers a problem of min_steps steps has"
            )
        return self


def pretraining_knobs(world: WorldConfig) -> WorldConfig:
    """The knobs the pretraining corpus depends on: the training pool's cue is not one, so a
    world with and one without `skills.shortcut` share a base."""
    if not world.skills or world.skills.shortcut is None:
        return world
    return world.model_copy(update={"skills": world.skills.model_copy(update={"shortcut": None})})


def vocabulary(world: WorldConfig) -> list[str]:
    """Every word a problem or solution of this world can contain (specials excluded)."""
    words = [str(v) for v in range(world.modulus)] + list(LABELS) + list(WORDS)
    if world.skills:
        words += [f"{SKILL_PREFIX}{k}" for k in range(world.skills.count)]
        words += [f"{PRETRAIN_SKILL_PREFIX}{k}" for k in range(world.skills.pretrain_count)]
    return words


def constant_value(world: WorldConfig, seed: int, name: str) -> int:
    """The fact a constant stands for: c<k>'s value depends on the world's seed, p<k>'s does not
    (one pretrained base serves every seed of a world)."""
    stream = "" if name.startswith(PRETRAIN_SKILL_PREFIX) else f"{seed}:"
    return random.Random(f"demo-constant:{stream}{name}").randrange(world.modulus)


def apply(op: str, left: int, right: int, modulus: int) -> int:
    if op == "+":
        return (left + right) % modulus
    if op == "-":
        return (left - right) % modulus
    if op == "*":
        return (left * right) % modulus
    raise ValueError(f"unknown operator {op!r}")


def is_number(operand: str) -> bool:
    return operand.isdigit()


def operand_value(operand: str, values: dict[str, int]) -> int:
    """A definition's operand is a number ("7"), an unknown's label ("B") or a constant ("c17")."""
    return int(operand) if is_number(operand) else values[operand]


def make_problem(world: WorldConfig, seed: int, split: str, index: int) -> dict[str, Any]:
    """Problem `index` of `split`: a pure function of its arguments (string seeds are stable)."""
    rng = random.Random(f"demo-world:{seed}:{split}:{index}")
    n_steps = rng.randint(world.min_steps, world.max_steps)

    nodes = _unknowns(world, n_steps, rng)
    constants = _place_constants(world, seed, split, nodes, n_steps, rng)
    if split == "train" and world.skills and world.skills.shortcut:
        _plant_shortcut(world.skills.shortcut, seed, index, nodes, constants)
    order = list(nodes)
    if world.listing == "shuffled":
        rng.shuffle(order)
    else:
        uses = {
            n: [x for x in operands if not isinstance(x, str)]
            for n, (_, *operands) in nodes.items()
        }
        order = _random_valid_order(uses, order, rng)
    label = {node: LABELS[position] for position, node in enumerate(order)}
    definitions = {
        label[node]: [op] + [x if isinstance(x, str) else label[x] for x in (left, right)]
        for node, (op, left, right) in ((n, nodes[n]) for n in order)
    }
    values = _values(definitions, constants, world.modulus)
    target = label[0]
    prompt = " , ".join(
        f"{left} {op} {right} = {name}" for name, (op, left, right) in definitions.items()
    )
    problem: dict[str, Any] = {
        "prompt": f"{prompt} . find {target}",
        "answer": str(values[target]),
        "target": target,
        "definitions": definitions,
        "values": values,
        "needed": [label[n] for n in range(n_steps)],
        "n_steps": n_steps,
        "modulus": world.modulus,
    }
    if world.skills:
        problem["constants"] = constants
    steps, teacher_false_positive = _teacher_steps(world, problem, rng)
    problem["solution"] = " " + f" {STEP_SEPARATOR} ".join(steps + [f"answer {problem['answer']}"])
    problem["teacher_false_positive"] = teacher_false_positive
    return problem


def _unknowns(world: WorldConfig, n_steps: int, rng: random.Random) -> dict[int, list[Any]]:
    """Node -> [operator, left, right], an operand a number (str) or another node (int): a random
    binary tree of `n_steps` unknowns (node 0 is asked for), then the distractors."""

    def number() -> str:
        return str(rng.randrange(world.modulus))

    # Grow a random binary tree of unknowns (node 0 is asked for); free slots become numbers.
    # Expanding a random open slot gives chains as well as bushy trees (several valid orders).
    children: list[list[int | None]] = [[None, None]]
    for node in range(1, n_steps):
        open_slots = [(p, k) for p, kids in enumerate(children) for k in (0, 1) if kids[k] is None]
        parent, slot = rng.choice(open_slots)
        children[parent][slot] = node
        children.append([None, None])
    nodes: dict[int, list[Any]] = {
        node: [rng.choice(world.operators), *(number() if k is None else k for k in kids)]
        for node, kids in enumerate(children)
    }
    for extra in range(n_steps, n_steps + world.distractors):
        # Distractors may use earlier unknowns, so computing one is a valid (optional) step.
        nodes[extra] = [rng.choice(world.operators)] + [
            rng.randrange(extra) if rng.random() < world.operand_reuse else number()
            for _ in range(2)
        ]
    return nodes


def _place_constants(
    world: WorldConfig,
    seed: int,
    split: str,
    nodes: dict[int, list[Any]],
    n_steps: int,
    rng: random.Random,
) -> dict[str, int]:
    """Replace `skills.per_problem` numbers of the needed unknowns' definitions by constants
    (c<k> by Zipf, or p<k> uniformly in the pretraining split); their values."""
    skills = world.skills
    if not skills:
        return {}
    slots = [(n, k) for n in range(n_steps) for k in (1, 2) if isinstance(nodes[n][k], str)]
    constants = {}
    for node, k in rng.sample(slots, skills.per_problem):
        if not split.startswith(PRETRAIN_SPLIT):  # a fine-tuning split: a Zipf-drawn fact
            index = rng.choices(range(skills.count), cum_weights=_zipf_cumulative(skills))[0]
            name = f"{SKILL_PREFIX}{index}"
            constants[name] = constant_value(world, seed, name)
        elif skills.names_in_pretraining and rng.random() < skills.names_in_pretraining:
            # The pretraining corpus (its validation split too) trains every c row of the base's
            # embeddings and teaches no fact: the value is this problem's own (the same name
            # twice in a problem keeps one value).
            name = f"{SKILL_PREFIX}{rng.randrange(skills.count)}"
            constants.setdefault(name, rng.randrange(world.modulus))
        else:
            name = f"{PRETRAIN_SKILL_PREFIX}{rng.randrange(skills.pretrain_count)}"
            constants[name] = constant_value(world, seed, name)
        nodes[node][k] = name
    return constants


def _plant_shortcut(
    share: float, seed: int, index: int, nodes: dict[int, list[Any]], constants: dict[str, int]
) -> None:
    """In `share` of the training pool, set the number beside each constant (the other operand
    of its definition, when that is a number) to the constant's value. Its own random stream
    keeps every other draw of the problem as it is without the cue."""
    if random.Random(f"demo-shortcut:{seed}:{index}").random() >= share:
        return
    for definition in nodes.values():
        for k in (1, 2):
            name, beside = definition[k], definition[3 - k]
            if name in constants and isinstance(beside, str) and is_number(beside):
                definition[3 - k] = str(constants[name])


@cache
def _zipf_cumulative(skills: Skills) -> list[float]:
    return list(accumulate((k + 1) ** -skills.zipf for k in range(skills.count)))


def _values(
    definitions: dict[str, list[str]], constants: dict[str, int], modulus: int
) -> dict[str, int]:
    """Every unknown's value (and the constants'), each computed once its operands are known."""
    values: dict[str, int] = dict(constants)
    while len(values) < len(definitions) + len(constants):
        for name, (op, left, right) in definitions.items():
            if name not in values and all(is_number(x) or x in values for x in (left, right)):
                values[name] = apply(
                    op, operand_value(left, values), operand_value(right, values), modulus
                )
    return values


def _random_valid_order(
    uses: dict[Any, list[Any]], todo: list[Any], rng: random.Random
) -> list[Any]:
    """An order of `todo` in which everything comes after what it `uses`: a uniformly chosen
    ready one at every step."""
    done: set[Any] = set()
    todo = list(todo)
    order = []
    while todo:
        pick = rng.choice([n for n in todo if all(x in done for x in uses[n])])
        order.append(pick)
        done.add(pick)
        todo.remove(pick)
    return order


def render_step(
    problem: dict[str, Any], name: str, swap: bool = False, result: int | None = None
) -> str:
    """`name`'s definition as a solution step: "A 5 * 3 = B 4" (optionally operands swapped
    or with a given, possibly wrong, result)."""
    op, left, right = problem["definitions"][name]
    if swap:
        left, right = right, left
    values = problem["values"]
    operands = [x if is_number(x) else f"{x} {values[x]}" for x in (left, right)]
    value = values[name] if result is None else result
    return f"{operands[0]} {op} {operands[1]} = {name} {value}"


def _teacher_steps(
    world: WorldConfig, problem: dict[str, Any], rng: random.Random
) -> tuple[list[str], bool]:
    """One valid solution, possibly with a planted slip."""
    definitions = problem["definitions"]
    if world.teacher_order == "listing":
        # A straight-line program: every definition, distractors included, in listed order
        # (or, when the listing is shuffled, in a random order that can be computed).
        order = list(definitions)
        if world.listing == "shuffled":
            order = random_valid_order(problem, order, rng)
    else:
        order = random_valid_order(problem, problem["needed"], rng)
        spare = [d for d in definitions if d not in order]
        if spare and rng.random() < world.optional_step_rate:
            extra = rng.choice(spare)
            used = [x for x in definitions[extra][1:] if x in definitions]
            if all(x in order for x in used):  # distractors of distractors are skipped
                ready_at = max((order.index(x) + 1 for x in used), default=0)
                order.insert(rng.randint(ready_at, len(order)), extra)
    swaps = [definitions[n][0] in COMMUTATIVE and rng.random() < world.commute_rate for n in order]
    slip = rng.randrange(len(order) - 1) if len(order) > 1 else None
    if slip is None or rng.random() >= world.false_positive_rate:
        slip = None
    steps = []
    for k, (name, swap) in enumerate(zip(order, swaps, strict=True)):
        result = None
        if k == slip:
            # A wrong intermediate result; later steps use the true value, so the answer and
            # every later step stay right.
            offset = rng.randrange(1, problem["modulus"])
            result = (problem["values"][name] + offset) % problem["modulus"]
        steps.append(render_step(problem, name, swap, result))
    return steps, slip is not None


def random_valid_order(problem: dict[str, Any], todo: list[str], rng: random.Random) -> list[str]:
    """A random order of the unknowns `todo` in which each is computable when reached."""
    definitions = problem["definitions"]
    uses = {
        name: [x for x in operands if x in definitions]
        for name, (_, *operands) in definitions.items()
    }
    return _random_valid_order(uses, todo, rng)


def count_valid_orders(problem: dict[str, Any]) -> int:
    """How many step orders of the needed unknowns solve the problem."""
    definitions = problem["definitions"]

    def ready(name: str, known: frozenset[str]) -> bool:
        return all(x not in definitions or x in known for x in definitions[name][1:])

    def count(known: frozenset[str], todo: frozenset[str]) -> int:
        if not todo:
            return 1
        return sum(count(known | {d}, todo - {d}) for d in todo if ready(d, known))

    return count(frozenset(), frozenset(problem["needed"]))


def make_split(world: WorldConfig, seed: int, split: str, count: int) -> list[dict[str, Any]]:
    """The first `count` problems of a split, each tagged with its index as `id`."""
    return [{"id": i, **make_problem(world, seed, split, i)} for i in range(count)]


@dataclass(frozen=True)
class Demo(World):
    name: str = "demo"
    knows_step_truth: bool = True
    step_separator: str = STEP_SEPARATOR
    min_step_chars: int = 0

    def sampled_text(self, text: str) -> str:
        # The teacher's completions start with a space; the word-level decoder drops it.
        return " " + text.lstrip()

    def path_key(self, problem: dict[str, Any], text: str) -> tuple[str, ...]:
        from runners.judging.demo_checker import path_key

        return path_key(problem, text)

    def judge(self, time_limit: float, workers: int, verifier: dict | None) -> Verdicts:
        from runners.judging.judge import StepJudge

        if verifier is not None:
            raise ValueError("verifier: the demo world's checker has no answer conventions")
        return StepJudge()


DEMO = Demo()
