"""Every (columns) combination and every (phase × move) pair of a job's container life, against
the life restated here independently of app/domain/container_phases.py."""

from __future__ import annotations

import itertools

import pytest

from app.domain.container_phases import (
    MOVES,
    ContainerMove,
    ContainerPhase,
    IllegalMove,
    after,
    phase_of,
)

PHASES = list(ContainerPhase)
MOVE_LIST = list(ContainerMove)

#: (claimed, end recorded, gone) → phase; the columns only the legal moves write.
COLUMNS: dict[tuple[bool, bool, bool], ContainerPhase] = {
    (False, False, False): ContainerPhase.UNCLAIMED,
    (True, False, False): ContainerPhase.CLAIMED,
    (True, True, False): ContainerPhase.ENDED,
    (True, True, True): ContainerPhase.GONE,
}

#: What each move writes, as (claimed, end recorded, gone) after it.
WRITES = {
    ContainerMove.CLAIM: lambda c, e, g: (True, e, g),
    ContainerMove.RELEASE: lambda c, e, g: (False, e, g),
    ContainerMove.RECORD_END: lambda c, e, g: (c, True, g),
    ContainerMove.MARK_GONE: lambda c, e, g: (c, e, True),
}


def spec_allows(phase: ContainerPhase, move: ContainerMove) -> bool:
    """A claim takes an unclaimed job; only a claim without an end is released or ended; only
    an ended container is removed; nothing leaves GONE."""
    return {
        ContainerMove.CLAIM: phase is ContainerPhase.UNCLAIMED,
        ContainerMove.RELEASE: phase is ContainerPhase.CLAIMED,
        ContainerMove.RECORD_END: phase is ContainerPhase.CLAIMED,
        ContainerMove.MARK_GONE: phase is ContainerPhase.ENDED,
    }[move]


@pytest.mark.parametrize("columns", list(itertools.product([False, True], repeat=3)), ids=str)
def test_every_combination_of_columns(columns: tuple[bool, bool, bool]) -> None:
    if columns in COLUMNS:
        assert phase_of(*columns) is COLUMNS[columns]
    else:  # an end without a claim, gone without an end: no move writes these
        with pytest.raises(ValueError, match="no container phase"):
            phase_of(*columns)


@pytest.mark.parametrize(("phase", "move"), list(itertools.product(PHASES, MOVE_LIST)), ids=str)
def test_every_phase_and_move(phase: ContainerPhase, move: ContainerMove) -> None:
    if not spec_allows(phase, move):
        with pytest.raises(IllegalMove) as refused:
            after(phase, move)
        assert (refused.value.phase, refused.value.move) == (phase, move)
        assert str(move) in str(refused.value)
        return
    target = after(phase, move)
    # The move's writes on the phase's columns encode the phase the table says it leads to.
    columns = next(c for c, p in COLUMNS.items() if p is phase)
    assert phase_of(*WRITES[move](*columns)) is target


def test_the_table_has_only_the_legal_moves() -> None:
    legal = {(p, m) for p, m in itertools.product(PHASES, MOVE_LIST) if spec_allows(p, m)}
    assert set(MOVES) == legal


def test_every_phase_is_reached_from_unclaimed_and_gone_is_final() -> None:
    reached, frontier = {ContainerPhase.UNCLAIMED}, [ContainerPhase.UNCLAIMED]
    while frontier:
        phase = frontier.pop()
        for (source, _move), target in MOVES.items():
            if source is phase and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(PHASES)
    assert not [move for (source, move) in MOVES if source is ContainerPhase.GONE]


def test_a_node_holds_the_container_from_its_claim_until_it_is_gone() -> None:
    held = {phase for phase in PHASES if phase.holds_container}
    assert held == {ContainerPhase.CLAIMED, ContainerPhase.ENDED}
    ended = {phase for phase in PHASES if phase.end_recorded}
    assert ended == {ContainerPhase.ENDED, ContainerPhase.GONE}
