"""Programming plans as data: which steps, in which order, for a package's segments.

A plan has set-up steps (sessions, security access, DTC setting and communication off), which are
run again on every resume because an interrupted connection loses them, and body steps (per
segment: erase, download, check memory; then dependencies, reset, verify), which the journal
tracks. One engine (:mod:`.sequencer`) runs every plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_py.i18n import N_
from firmware_py.uds.flash.package import FlashPackage

SETUP_ACTIONS = (
    "precheck",
    "extended_session",
    "programming_session",
    "security_access",
    "dtc_setting_off",
    "communication_off",
)
SEGMENT_ACTIONS = ("erase", "download", "check_memory")
FINISH_ACTIONS = ("check_dependencies", "reset", "verify_version")
ACTIONS = frozenset(SETUP_ACTIONS + SEGMENT_ACTIONS + FINISH_ACTIONS)

STEP_NAMES = {
    "precheck": N_("check package, ECU identity and battery"),
    "extended_session": N_("extended session"),
    "programming_session": N_("programming session"),
    "security_access": N_("security access"),
    "dtc_setting_off": N_("DTC setting off"),
    "communication_off": N_("communication control off"),
    "erase": N_("erase segment {segment}"),
    "download": N_("download segment {segment}"),
    "check_memory": N_("check memory segment {segment}"),
    "check_dependencies": N_("check programming dependencies"),
    "reset": N_("ECU reset"),
    "verify_version": N_("verify software version"),
}
"""each step's name as the tablet shows it (a template: a segment step names its segment)"""


@dataclass(frozen=True)
class Step:
    action: str
    segment: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown programming step {self.action!r}")
        if (self.action in SEGMENT_ACTIONS) != (self.segment is not None):
            raise ValueError(
                f"step {self.action} needs a segment exactly when it is a segment step"
            )

    @property
    def template(self) -> str:
        return STEP_NAMES[self.action]

    @property
    def values(self) -> dict[str, int]:
        """what the template names: the segment, counted from 1"""
        return {"segment": self.segment + 1} if self.segment is not None else {}

    @property
    def name(self) -> str:
        """in English (the journal, the logs, errors)"""
        return self.template.format_map(self.values)


@dataclass(frozen=True)
class PlanTemplate:
    """The shape of a plan; the default is the BMW-like sequence of docs/programming.md."""

    setup: tuple[str, ...] = SETUP_ACTIONS
    per_segment: tuple[str, ...] = SEGMENT_ACTIONS
    finish: tuple[str, ...] = FINISH_ACTIONS

    def __post_init__(self) -> None:
        if (
            not set(self.setup) <= set(SETUP_ACTIONS)
            or not set(self.per_segment) <= set(SEGMENT_ACTIONS)
            or not set(self.finish) <= set(FINISH_ACTIONS)
        ):
            raise ValueError("a plan template mixes up set-up, segment and finishing steps")
        if "precheck" not in self.setup or "download" not in self.per_segment:
            raise ValueError("a plan needs a precheck and a download")


@dataclass(frozen=True)
class Plan:
    setup: tuple[Step, ...]
    body: tuple[Step, ...]

    def resume_index(self, first_incomplete: int) -> int:
        """Where to continue the body after an interruption at ``first_incomplete``: the start
        of an unfinished segment (its erase: the ECU lost the transfer), or the reset if the
        interruption came at or after it."""
        if first_incomplete >= len(self.body):
            return len(self.body)
        step = self.body[first_incomplete]
        if step.segment is not None:
            return next(i for i, s in enumerate(self.body) if s.segment == step.segment)
        reset = next((i for i, s in enumerate(self.body) if s.action == "reset"), None)
        if reset is not None and first_incomplete > reset:
            return reset
        return first_incomplete


def build_plan(package: FlashPackage, template: PlanTemplate = PlanTemplate()) -> Plan:
    body = [Step(a, i) for i in range(len(package.segments)) for a in template.per_segment]
    body += [Step(a) for a in template.finish]
    return Plan(tuple(Step(a) for a in template.setup), tuple(body))


# -- whole-vehicle plans: which ECUs may be programmed at the same time -------------------------


@dataclass(frozen=True)
class ParallelRules:
    """Which packages of a whole-vehicle update may run at the same time (``--parallel``).

    ECUs behind an ENET gateway (DoIP, HSFZ) each have their own connection through it, so
    they are programmed together over the one link. ECUs on one CAN bus share its bandwidth
    (and the box has one CAN channel), so there they run one after another. The gateway itself
    runs alone: its reset drops the connection every other ECU's programming runs over. Two
    packages for the same ECU run in the order given.
    """

    transports: tuple[str, ...] = ("doip", "hsfz")
    """link kinds over which ECUs are programmed at the same time"""
    alone: tuple[int, ...] = (0x10,)
    """ECU addresses programmed with nothing else running (the central gateway)"""


def stages(
    addresses: list[int], *, link_kind: str, parallel: bool, rules: ParallelRules = ParallelRules()
) -> list[list[int]]:
    """The packages (indices into ``addresses``, each its target ECU) as stages run one after
    another; the packages of one stage run at the same time. Without ``parallel``, or over a
    link that does not allow it, every stage has one package: the order given (the safe
    default)."""
    if not parallel or link_kind not in rules.transports:
        return [[i] for i in range(len(addresses))]
    result: list[list[int]] = []
    current: list[int] = []
    for i, address in enumerate(addresses):
        if address in rules.alone:
            if current:
                result.append(current)
            result.append([i])
            current = []
            continue
        if any(addresses[j] == address for j in current):
            result.append(current)
            current = []
        current.append(i)
    if current:
        result.append(current)
    return result
