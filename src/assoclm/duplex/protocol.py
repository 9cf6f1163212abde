"""The full-duplex protocol's data types (docs/ARCHITECTURE.md, "Full-duplex event protocol").

A dialogue is a list of events in the order they happen. A model event whose ``interrupted``
flag is set was cut short: the user event after it arrived while the model was still
speaking, so the stream builder inserts ``[USER_INTERRUPT]`` there and the model must yield.

The token-level protocol (one input token -> one target, with a loss weight):

=====================================  ==============================  ======================
input                                  target                          note
=====================================  ==============================  ======================
``[SESSION]``, ``[USER]``              ``[LISTEN]``                    memory reset at
                                                                       ``[SESSION]``
user token inside a turn               ``[LISTEN]``                    the model listens
last user token before the model       ``[USER_END]``                  turn-taking decision
``[USER_END]``                         ``[MODEL]``
``[MODEL]`` / model token              next model token                ordinary LM
last model token                       ``[MODEL_END]``                 natural end of turn
``[USER_INTERRUPT]``                   ``[MODEL_END]``                 the model yields
``[MODEL_END]``                        ``[USER]`` or ``[SESSION_END]``
=====================================  ==============================  ======================
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("user", "model")
PROBE_KINDS = ("updated", "untouched")


@dataclass(frozen=True)
class Event:
    """One turn (or slice of a turn) of one speaker.

    Attributes:
        role: "user" or "model".
        text: what was said (may be empty; the builder documents how empty turns stream).
        interrupted: model events only: the next user event cut this turn short.
    """

    role: str
    text: str
    interrupted: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Event.role must be one of {ROLES}; got {self.role!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"Event.text must be a str; got {type(self.text).__name__}")
        if self.interrupted and self.role != "model":
            raise ValueError("Event.interrupted is only meaningful for model events")


@dataclass(frozen=True)
class Probe:
    """A memory question in a synthetic dialogue and its expected answer.

    Attributes:
        event_index: index (in ``Dialogue.events``) of the model event that answers.
        answer: the value the answer must contain (the latest one stated for the fact).
        kind: "updated" (the fact was corrected after it was first stated) or "untouched".
    """

    event_index: int
    answer: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"Probe.kind must be one of {PROBE_KINDS}; got {self.kind!r}")


@dataclass(frozen=True)
class Dialogue:
    """One session: a stable name (used for the held-out split), its events and probes."""

    name: str
    events: tuple[Event, ...]
    probes: tuple[Probe, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(self.events))
        object.__setattr__(self, "probes", tuple(self.probes))
        for probe in self.probes:
            if not 0 <= probe.event_index < len(self.events) or \
                    self.events[probe.event_index].role != "model":
                raise ValueError(
                    f"dialogue {self.name!r}: probe at event {probe.event_index} must point "
                    "at a model event"
                )
