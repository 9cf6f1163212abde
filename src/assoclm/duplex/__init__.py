"""Full-duplex dialogue: protocol types, metrics and the live session runtime."""

from assoclm.duplex.protocol import PROBE_KINDS, ROLES, Dialogue, Event, Probe

__all__ = ["PROBE_KINDS", "ROLES", "Dialogue", "Event", "Probe"]
