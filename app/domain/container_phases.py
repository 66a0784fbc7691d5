"""A job's container life, named (no I/O).

The job's status (app/domain/transitions.py) is what the user sees. The container phase is
what a node holds, read from columns of the job row that only workers/container_writes.py
writes:

    UNCLAIMED --claim--> CLAIMED --record end--> ENDED --mark gone--> GONE
        ^                   |
        +------release------+     (a launch that is over without a container)

- CLAIMED: `node` is set (with `claimed_dttm` and `gpu_ids`): the node launches or runs the
  container. Whether its start was seen is the job's status (QUEUED, then RUNNING).
- ENDED: `container_ended_dttm` is set with how it ended (exit code, OOM, log tail, missing,
  node lost): recorded before the container is removed, and judged by `complete_job`.
- GONE: `container_gone_dttm` is set: its node removed the container and freed its GPUs.

From CLAIMED until GONE the job holds a slot of its node, its GPUs and its model's one
container (no second container of the model starts).

Not phases, because no container column records them: "created" is known only to the
runtime (a launch finds it by the container's name); "running" is the job's status RUNNING;
"judged" is a terminal status (status_writes), and it is not ordered with these phases: a
cancel ends the job before its end is recorded, and `complete_job` usually runs after the
container is gone.
"""

from __future__ import annotations

from enum import StrEnum


class ContainerPhase(StrEnum):
    UNCLAIMED = "UNCLAIMED"
    CLAIMED = "CLAIMED"
    ENDED = "ENDED"
    GONE = "GONE"

    @property
    def holds_container(self) -> bool:
        """The job's node still holds it: a slot, its GPUs, its model's one container."""
        return self in (ContainerPhase.CLAIMED, ContainerPhase.ENDED)

    @property
    def end_recorded(self) -> bool:
        """How the container ended is known (its judgement can run)."""
        return self in (ContainerPhase.ENDED, ContainerPhase.GONE)


class ContainerMove(StrEnum):
    CLAIM = "claim"  # a node takes the job to launch it (sets node, claimed_dttm, gpu_ids)
    RELEASE = "release"  # the launch is over and no container was started
    RECORD_END = "record end"  # exit code, OOM flag, log tail: before the container is removed
    MARK_GONE = "mark gone"  # the node removed the container


#: Every legal move; anything else is a bug of the caller.
MOVES: dict[tuple[ContainerPhase, ContainerMove], ContainerPhase] = {
    (ContainerPhase.UNCLAIMED, ContainerMove.CLAIM): ContainerPhase.CLAIMED,
    (ContainerPhase.CLAIMED, ContainerMove.RELEASE): ContainerPhase.UNCLAIMED,
    (ContainerPhase.CLAIMED, ContainerMove.RECORD_END): ContainerPhase.ENDED,
    (ContainerPhase.ENDED, ContainerMove.MARK_GONE): ContainerPhase.GONE,
}


class IllegalMove(RuntimeError):
    def __init__(self, phase: ContainerPhase, move: ContainerMove) -> None:
        super().__init__(f"a container in phase {phase} cannot {move}")
        self.phase = phase
        self.move = move


def phase_of(claimed: bool, end_recorded: bool, gone: bool) -> ContainerPhase:
    """The phase the columns encode: `claimed` is `node` set, `end_recorded` is
    `container_ended_dttm` set, `gone` is `container_gone_dttm` set. Only the legal moves
    write them, so an end implies a claim and gone implies an end; other combinations are
    refused rather than guessed."""
    if gone and end_recorded and claimed:
        return ContainerPhase.GONE
    if end_recorded and claimed and not gone:
        return ContainerPhase.ENDED
    if claimed and not end_recorded and not gone:
        return ContainerPhase.CLAIMED
    if not (claimed or end_recorded or gone):
        return ContainerPhase.UNCLAIMED
    raise ValueError(
        f"no container phase has claimed={claimed}, end recorded={end_recorded}, gone={gone}"
    )


def after(phase: ContainerPhase, move: ContainerMove) -> ContainerPhase:
    """The phase `move` leads to from `phase`; IllegalMove when it is not a legal move."""
    target = MOVES.get((phase, move))
    if target is None:
        raise IllegalMove(phase, move)
    return target
