"""Full-duplex training streams: one session -> ``(input_ids, target_ids, weights)``.

A :class:`~assoclm.duplex.protocol.Dialogue` (a list of user/model events) becomes one token
stream that follows the protocol table in :mod:`assoclm.duplex.protocol`
(docs/ARCHITECTURE.md, "Full-duplex event protocol"). Every input token has one target and
one loss weight. The stream starts with ``[SESSION]`` and holds exactly one session, so the
consumer zeros the memory state at position 0 (``DuplexStream.resets``); streams must never
be packed without a reset at every ``[SESSION]`` input.

Worked example (``ByteTokenizer``, default :class:`LossWeights`) for the dialogue
``user "hi"``, ``model "abc"`` (interrupted), ``user "no"``, ``model "ok"``; this is exactly
what ``build_stream(...).table(tokenizer)`` prints, and a test keeps the two identical::

      i  input             target            weight
      0  [SESSION]         [LISTEN]          0.05
      1  [USER]            [LISTEN]          0.05
      2  'h'               [LISTEN]          0.05
      3  'i'               [USER_END]        1
      4  [USER_END]        [MODEL]           1
      5  [MODEL]           'a'               1
      6  'a'               'b'               1
      7  'b'               'c'               1
      8  'c'               [PAD]             0
      9  [USER_INTERRUPT]  [MODEL_END]       1
     10  [MODEL_END]       [USER]            1
     11  [USER]            [LISTEN]          0.05
     12  'n'               [LISTEN]          0.05
     13  'o'               [USER_END]        1
     14  [USER_END]        [MODEL]           1
     15  [MODEL]           'o'               1
     16  'o'               'k'               1
     17  'k'               [MODEL_END]       1
     18  [MODEL_END]       [SESSION_END]     1
     19  [SESSION_END]     [PAD]             0

How targets follow from inputs (one rule, applied position by position):

* While the user holds the floor (inputs ``[SESSION]``, ``[USER]`` and user tokens) the target
  is ``[LISTEN]``, or ``[USER_END]`` where the next input is ``[USER_END]``. Apart from the
  cut-off positions below, these are the *user-stream positions*, and they are exactly the
  positions whose target is ``[LISTEN]`` or ``[USER_END]`` (what the metrics use).
* Everywhere else the model produced the next input, so the target is the next input
  (``[USER_END]`` -> ``[MODEL]``, ``[MODEL]`` -> first model token, ..., last model token ->
  ``[MODEL_END]``, ``[USER_INTERRUPT]`` -> ``[MODEL_END]``, ``[MODEL_END]`` -> ``[USER]``
  or ``[SESSION_END]``).
* Where the next input is an event nobody can predict, the target is ``[PAD]`` with weight
  0: the input just before ``[USER_INTERRUPT]`` (row 8: a user cutting in), the input just
  before a ``[SESSION_END]`` that does not follow ``[MODEL_END]`` (the session was cut off),
  and the final ``[SESSION_END]`` itself (nothing follows it).

Weights: ``[PAD]`` targets 0 (and only they); ``[LISTEN]`` targets ``LossWeights.listen``;
any other control target ``LossWeights.control``; a text token target
``LossWeights.content``, or ``LossWeights.answer`` inside a model event that answers a
memory probe (inputs ``[MODEL]`` up to the event's last token). Text is encoded with
``tokenizer.encode``, which never yields a control id, so a user typing "[USER]" adds bytes,
not a turn.

Cases the protocol table leaves open, decided here (``a``, ``b``, ... are byte tokens;
``L`` = ``[LISTEN]``, ``UE`` = ``[USER_END]``; ``x -> y`` is input -> target):

* **Session end.** ``[SESSION_END]`` is always the last input, target ``[PAD]``, weight 0.
  After a model turn ``[MODEL_END] -> [SESSION_END]`` is trained (the model says the session
  is over).
* **Two user events in a row** (the user paused): ``user "a"``, ``user "b"``,
  ``model "c"`` streams ``[USER] -> L, a -> L, [USER] -> L, b -> UE, [USER_END] -> [MODEL]``.
  Only the last user token before a model turn predicts ``[USER_END]``.
* **Empty user event.** Its ``[USER]`` is its last user-side token: ``[USER] -> UE`` when a
  model event follows, ``[USER] -> L`` when another user event follows.
* **Empty model event**: ``[MODEL] -> [MODEL_END]``.
* **A model event with no user event before it** (the dialogue starts with the model, or
  two model events in a row): an empty user turn is streamed before it, so the model
  still only speaks after ``[USER_END]``: ``[SESSION] -> L, [USER] -> UE,
  [USER_END] -> [MODEL]``, or after a model turn ``[MODEL_END] -> [USER], [USER] -> UE``.
* **The dialogue ends with a user event** (an unanswered message): the user tokens stream as
  usual, then ``[SESSION_END]``; the last user token (or ``[USER]`` if the event is empty)
  gets ``[PAD]``, weight 0, since it is unknown whether the user had finished.
* **An interrupted model event that is the last event**: the session was cut off while the
  model spoke. No user spoke, so no ``[USER_INTERRUPT]``: ``[MODEL] a b`` then
  ``[SESSION_END]``, with ``b -> [PAD]`` (weight 0) and no ``[MODEL_END]``.
* **An interrupted model event followed by another model event** contradicts the flag
  ("the next user event cut this turn short"): :func:`build_stream` raises ``ValueError``
  naming the dialogue and the event.
* **A dialogue with no events** raises ``ValueError``.

Synthetic interrupts (:func:`synthesize_interrupts`): each model event that is not already
interrupted and has at least two words is, with probability ``p``, cut after a random
number ``k`` of its words (``1 <= k < words``). The event becomes three: the cut prefix of
its text (``interrupted=True``, the text up to the end of word ``k``, spacing kept), a user
interjection (``"wait"``, ``"hold on"``, ...), and the full original event again: the user
cut in, then let the model answer in full. Probes that pointed at a cut event point at the
full copy. :func:`build_streams` does this for many dialogues, seeding each dialogue's draws
from ``(seed, dialogue.name)``, so a dialogue's stream depends on neither the order nor the
other dialogues; pass a new seed per epoch for fresh interrupts.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from assoclm.duplex.protocol import Dialogue, Event, Probe
from assoclm.tokenizer import CONTROL_IDS, BaseTokenizer

__all__ = [
    "DEFAULT_INTERJECTIONS",
    "DEFAULT_WEIGHTS",
    "DuplexStream",
    "LossWeights",
    "build_stream",
    "build_streams",
    "synthesize_interrupts",
    "token_name",
]

DEFAULT_INTERJECTIONS: tuple[str, ...] = ("wait", "hold on", "sorry, one thing", "hmm", "ok but")

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class LossWeights:
    """Loss weight per kind of target; every weight is a finite number >= 0.

    ``[PAD]`` targets always weigh 0; the input just before ``[USER_INTERRUPT]`` (and before a
    ``[SESSION_END]`` that cuts a turn off) always has target ``[PAD]``.

    Attributes:
        listen: targets equal to ``[LISTEN]`` (many and easy, so down-weighted).
        control: any other control target (``[USER_END]``, ``[MODEL]``, ``[MODEL_END]``,
            ``[USER]``, ``[SESSION_END]``).
        content: text token targets (ordinary LM on the model side).
        answer: text token targets inside a model event that answers a memory question
            (an event a :class:`~assoclm.duplex.protocol.Probe` points at), in place of
            ``content``. These few tokens carry the recalled value, so they may be weighted
            up without weighting up the rest of the model's text.
    """

    listen: float = 0.05
    control: float = 1.0
    content: float = 1.0
    answer: float = 1.0

    def __post_init__(self) -> None:
        for name in ("listen", "control", "content", "answer"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
                value, bool
            )
            if not ok or not math.isfinite(value) or value < 0:
                raise ValueError(f"LossWeights.{name} must be a finite number >= 0; got {value!r}")


DEFAULT_WEIGHTS = LossWeights()


def token_name(tokenizer: BaseTokenizer, token_id: int) -> str:
    """A readable name for one id: ``"[USER]"`` for a control id, ``"'h'"`` (the repr of the
    decoded text) for any other id."""
    token_id = int(token_id)
    if tokenizer.is_control(token_id):
        return tokenizer.control_tokens[token_id]
    return repr(tokenizer.decode([token_id]))


@dataclass(frozen=True, eq=False)
class DuplexStream:
    """One session as a token stream; the three arrays are the contract.

    Attributes:
        name: the dialogue's name.
        input_ids: [N] int64, starting with ``[SESSION]`` and ending with ``[SESSION_END]``.
        target_ids: [N] int64, the target of each input (see the module docstring).
        weights: [N] float32 loss weights, 0 exactly where the target is ``[PAD]``.
    """

    name: str
    input_ids: np.ndarray
    target_ids: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "input_ids": np.asarray(self.input_ids, dtype=np.int64),
            "target_ids": np.asarray(self.target_ids, dtype=np.int64),
            "weights": np.asarray(self.weights, dtype=np.float32),
        }
        shapes = {key: arr.shape for key, arr in arrays.items()}
        if any(arr.ndim != 1 for arr in arrays.values()) or len(set(shapes.values())) != 1:
            raise ValueError(f"stream {self.name!r}: arrays must be 1-D of one length; {shapes}")
        for key, arr in arrays.items():
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def resets(self) -> np.ndarray:
        """[N] bool: True where the memory must be zeroed before the step (input
        ``[SESSION]``; only position 0 in one stream)."""
        return self.input_ids == CONTROL_IDS["[SESSION]"]

    def table(self, tokenizer: BaseTokenizer) -> str:
        """The stream as a text table, one row per position: index, input, target, weight."""
        inputs = [token_name(tokenizer, i) for i in self.input_ids]
        targets = [token_name(tokenizer, t) for t in self.target_ids]
        width = max(len(s) for s in ["input", "target", *inputs, *targets]) + 2
        rows = [f"{'i':>3}  {'input':<{width}}{'target':<{width}}weight"]
        for i, (x, y, w) in enumerate(zip(inputs, targets, self.weights)):
            rows.append(f"{i:>3}  {x:<{width}}{y:<{width}}{float(w):g}")
        return "\n".join(rows)


def build_stream(
    dialogue: Dialogue, tokenizer: BaseTokenizer, weights: LossWeights = DEFAULT_WEIGHTS
) -> DuplexStream:
    """Turn one dialogue into its token stream (protocol and open cases: module docstring).

    Args:
        dialogue: the session; at least one event.
        tokenizer: any :class:`~assoclm.tokenizer.BaseTokenizer`.
        weights: the loss weight of each kind of target.

    Returns:
        a :class:`DuplexStream` of N positions.

    Raises:
        ValueError: the dialogue has no events, or an interrupted model event is followed by
            a model event.
    """
    events = dialogue.events
    if not events:
        raise ValueError(f"dialogue {dialogue.name!r} has no events")
    ids = {name: tokenizer.control_id(name) for name in tokenizer.control_tokens}
    texts = tokenizer.encode_batch([event.text for event in events])

    # inputs[i], whether the user holds the floor at inputs[i] (user-stream position), and
    # whether inputs[i] is the [MODEL] or a token of a model event that answers a probe.
    inputs: list[int] = [ids["[SESSION]"]]
    listening: list[bool] = [True]
    answering: list[bool] = [False]
    probed = {probe.event_index for probe in dialogue.probes}

    def put(tokens: list[int], user_side: bool, answer: bool = False) -> None:
        inputs.extend(tokens)
        listening.extend([user_side] * len(tokens))
        answering.extend([answer] * len(tokens))

    previous: str | None = None
    for index, (event, tokens) in enumerate(zip(events, texts)):
        if event.role == "user":
            put([ids["[USER]"], *tokens], user_side=True)
        else:
            # The model only speaks after [USER_END]: stream an empty user turn if none came.
            if previous != "user":
                put([ids["[USER]"]], user_side=True)
            put([ids["[USER_END]"]], user_side=False)
            put([ids["[MODEL]"], *tokens], user_side=False, answer=index in probed)
            following = events[index + 1] if index + 1 < len(events) else None
            if not event.interrupted:
                put([ids["[MODEL_END]"]], user_side=False)
            elif following is not None and following.role == "model":
                raise ValueError(
                    f"dialogue {dialogue.name!r}: event {index} is an interrupted model event "
                    f"but event {index + 1} is a model event, not the user event that cut it"
                )
            elif following is not None:
                put([ids["[USER_INTERRUPT]"], ids["[MODEL_END]"]], user_side=False)
            # An interrupted last event: the session was cut off; [SESSION_END] follows.
        previous = event.role
    put([ids["[SESSION_END]"]], user_side=False)

    x = np.asarray(inputs, dtype=np.int64)  # [N]
    user_side = np.asarray(listening, dtype=bool)  # [N]
    # Nothing follows [SESSION_END]: the [PAD] sentinel becomes its target.
    following = np.append(x[1:], ids["[PAD]"])  # [N]
    listen_or_end = np.where(following == ids["[USER_END]"], ids["[USER_END]"], ids["[LISTEN]"])
    targets = np.where(user_side, listen_or_end, following)
    unpredictable = (following == ids["[USER_INTERRUPT]"]) | (
        (following == ids["[SESSION_END]"]) & (x != ids["[MODEL_END]"])
    )
    targets[unpredictable] = ids["[PAD]"]

    is_control = targets < len(tokenizer.control_tokens)
    in_answer = np.asarray(answering, dtype=bool)  # [N]
    w = np.where(is_control, weights.control,
                 np.where(in_answer, weights.answer, weights.content))
    w = np.where(targets == ids["[LISTEN]"], weights.listen, w)
    w = np.where(targets == ids["[PAD]"], 0.0, w)
    return DuplexStream(dialogue.name, x, targets, w.astype(np.float32))


def synthesize_interrupts(
    dialogue: Dialogue,
    p_interrupt: float,
    rng: np.random.Generator,
    interjections: Sequence[str] = DEFAULT_INTERJECTIONS,
) -> Dialogue:
    """Cut model turns short with user interjections (policy: module docstring).

    Each model event that is not interrupted and has at least two words draws one uniform
    number; when it is below ``p_interrupt`` the event is replaced by ``Event("model",
    prefix, interrupted=True)``, ``Event("user", interjection)`` and the original event.

    Args:
        dialogue: the session.
        p_interrupt: probability in [0, 1] that an eligible model event is cut.
        rng: the source of all draws (the result is a function of its state).
        interjections: what the user says when cutting in; one is drawn uniformly.

    Returns:
        a new :class:`Dialogue` with the same name, probes re-indexed to the full copies.

    Raises:
        ValueError: ``p_interrupt`` is outside [0, 1], or ``interjections`` is empty.
    """
    _check_probability(p_interrupt)
    interjections = _check_interjections(interjections)
    events: list[Event] = []
    # new_index[i]: where old event i (its full text) sits in the new event list.
    new_index: list[int] = []
    for event in dialogue.events:
        words = list(_WORD.finditer(event.text))
        eligible = event.role == "model" and not event.interrupted and len(words) >= 2
        if eligible and rng.random() < p_interrupt:
            keep = int(rng.integers(1, len(words)))
            said = interjections[int(rng.integers(len(interjections)))]
            prefix = event.text[: words[keep - 1].end()]
            events += [Event("model", prefix, interrupted=True), Event("user", said)]
        new_index.append(len(events))
        events.append(event)
    probes = tuple(
        Probe(new_index[probe.event_index], probe.answer, probe.kind) for probe in dialogue.probes
    )
    return Dialogue(dialogue.name, tuple(events), probes)


def build_streams(
    dialogues: Iterable[Dialogue],
    tokenizer: BaseTokenizer,
    weights: LossWeights = DEFAULT_WEIGHTS,
    p_interrupt: float = 0.2,
    seed: int = 0,
) -> list[DuplexStream]:
    """Synthesize interrupts, then build one stream per dialogue.

    Each dialogue draws from its own generator seeded with ``(seed, sha256(name))``: the same
    seed gives the same streams, whatever the order of the dialogues.

    Args:
        dialogues: the sessions.
        tokenizer: any :class:`~assoclm.tokenizer.BaseTokenizer`.
        weights: the loss weight of each kind of target.
        p_interrupt: probability in [0, 1] that an eligible model event is cut; 0 keeps the
            dialogues as they are (use it for evaluation).
        seed: base seed of the interrupt draws.

    Returns:
        one :class:`DuplexStream` per dialogue, in order.

    Raises:
        ValueError: ``p_interrupt`` is outside [0, 1] or ``seed`` is negative; as
            :func:`build_stream` for a malformed dialogue.
    """
    _check_probability(p_interrupt)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    streams = []
    for dialogue in dialogues:
        if p_interrupt > 0:
            name_key = hashlib.sha256(dialogue.name.encode("utf-8", "surrogatepass")).digest()
            rng = np.random.default_rng([seed, int.from_bytes(name_key[:8], "little")])
            dialogue = synthesize_interrupts(dialogue, p_interrupt, rng)
        streams.append(build_stream(dialogue, tokenizer, weights))
    return streams


def _check_probability(p_interrupt: float) -> None:
    ok = isinstance(p_interrupt, (int, float, np.floating, np.integer)) and not isinstance(
        p_interrupt, bool
    )
    if not ok or not 0.0 <= p_interrupt <= 1.0:
        raise ValueError(f"p_interrupt must be a number in [0, 1]; got {p_interrupt!r}")


def _check_interjections(interjections: Sequence[str]) -> tuple[str, ...]:
    if isinstance(interjections, str):
        raise ValueError(f"interjections must be a sequence of strings, not one string: "
                         f"{interjections!r}")
    result = tuple(interjections)
    if not result or not all(isinstance(s, str) for s in result):
        raise ValueError(f"interjections must be a non-empty sequence of strings; got {result!r}")
    return result
