"""A checkpoint is committed as a whole: a crash or a full disk at any instant of a save leaves a
folder that loads as the previous checkpoint or as the new one, never as a mix, never as nothing."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from conftest import make_mlp_agent

from interpret_rl import registry

# Every filesystem change a save makes goes through one of these calls (atomic.py): a crash is
# simulated just before the k-th of them, for every k until a save runs through untouched.
MUTATING_CALLS = ("replace", "fsync", "unlink", "ftruncate")


class SimulatedCrash(BaseException):
    """The process dies here: no cleanup handler gets to change the disk any more."""


def _trained(seed: int):
    """An MLP agent and its RMSprop state after one update, both depending on ``seed``."""
    agent = make_mlp_agent(seed)
    optimizer = torch.optim.RMSprop(agent.network.parameters(), lr=1e-3)
    logits, value = agent.network(torch.randn(8, 4, generator=torch.Generator().manual_seed(seed)))
    (logits.sum() + value.sum()).backward()
    optimizer.step()
    agent.steps_trained = 100 * (seed + 1)
    return agent, optimizer


def _state_of(path):
    """(steps, weights, optimizer tensors) as a fresh process would load them from ``path``."""
    loaded = registry.load_agent(path, check_env=False)
    optimizer = torch.optim.RMSprop(loaded.network.parameters(), lr=1e-3)
    registry.load_optimizer_state(path, optimizer)
    tensors = {(index, key): value for index, state in optimizer.state_dict()["state"].items()
               for key, value in state.items()}
    return loaded.steps_trained, loaded.network.state_dict(), tensors


def _same(a, b) -> bool:
    steps_a, weights_a, opt_a = a
    steps_b, weights_b, opt_b = b
    return (steps_a == steps_b and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
            and opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a))


def _leftovers(path):
    return sorted(p.name for p in path.rglob(".*") if p.name.endswith((".tmp", ".pending")))


def _inject(monkeypatch, at: int, fault):
    """Patch the mutating calls: call number ``at`` (0-based) gets ``fault(name)``."""
    count = {"n": 0}
    for name in MUTATING_CALLS:
        real = getattr(os, name)

        def patched(*args, _real=real, _name=name, **kwargs):
            count["n"] += 1
            outcome = fault(_name, count["n"] - 1 - at)
            if outcome is not None:
                raise outcome
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, patched)
    return count


def _crash_from(name, offset):
    return SimulatedCrash(name) if offset >= 0 else None  # dead from call `at` on


def _full_disk_once(name, offset):
    return OSError(errno.ENOSPC, "No space left on device") if offset == 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("keep_snapshot", [False, True])
def test_a_crash_between_any_two_writes_leaves_the_old_or_the_new_checkpoint(tmp_path, monkeypatch, keep_snapshot):
    old_agent, old_optimizer = _trained(0)
    new_agent, new_optimizer = _trained(1)
    outcomes = []
    for at in range(200):
        path = tmp_path / f"crash-{at}"
        registry.save_agent(old_agent, path, optimizer=old_optimizer, keep_snapshot=keep_snapshot)
        old_state = _state_of(path)
        with monkeypatch.context() as patch:
            count = _inject(patch, at, _crash_from)
            try:
                registry.save_agent(new_agent, path, optimizer=new_optimizer, keep_snapshot=keep_snapshot)
                crashed = False
            except SimulatedCrash:
                crashed = True
        now = _state_of(path)  # a new process: loads whatever the crash left
        assert _same(now, old_state) or _same(now, _state_of_fresh(tmp_path, new_agent, new_optimizer,
                                                                   keep_snapshot)), f"crash at call {at}"
        outcomes.append("old" if _same(now, old_state) else "new")
        # The next save finishes or cleans up what the crash left, and then holds the newest state.
        registry.save_agent(new_agent, path, optimizer=new_optimizer, keep_snapshot=keep_snapshot)
        assert _leftovers(path) == []
        if keep_snapshot:
            assert [step for step, _ in registry.snapshots(path)] == sorted({100, 200})
        if not crashed:
            break
    assert count["n"] >= 8, "the save made fewer filesystem calls than expected: is the patch reaching it?"
    assert at == count["n"], "the loop stopped before the crash point passed the last call"
    assert "old" in outcomes and "new" in outcomes  # the commit point lies inside the save


_FRESH: dict = {}


def _state_of_fresh(tmp_path, agent, optimizer, keep_snapshot):
    """The state an uninterrupted save of ``agent`` loads as (computed once)."""
    if keep_snapshot not in _FRESH:
        path = tmp_path / f"fresh-{keep_snapshot}"
        registry.save_agent(agent, path, optimizer=optimizer, keep_snapshot=keep_snapshot)
        _FRESH[keep_snapshot] = _state_of(path)
    return _FRESH[keep_snapshot]


@pytest.mark.slow
def test_a_full_disk_at_any_write_keeps_the_previous_checkpoint_and_the_next_save_works(tmp_path, monkeypatch):
    old_agent, old_optimizer = _trained(0)
    new_agent, new_optimizer = _trained(1)
    for at in range(200):
        path = tmp_path / f"full-{at}"
        registry.save_agent(old_agent, path, optimizer=old_optimizer)
        old_state = _state_of(path)
        with monkeypatch.context() as patch:
            count = _inject(patch, at, _full_disk_once)
            try:
                registry.save_agent(new_agent, path, optimizer=new_optimizer)
                failed = False
            except OSError as err:
                assert err.errno == errno.ENOSPC
                failed = True
        if not failed:
            break
        now = _state_of(path)
        if _same(now, old_state):  # refused before the commit: nothing of the new save is left
            assert _leftovers(path) == []
        registry.save_agent(new_agent, path, optimizer=new_optimizer)  # space is back
        assert _same(_state_of(path), _state_of_fresh(tmp_path, new_agent, new_optimizer, False))
        assert _leftovers(path) == []
    assert at == count["n"] and at >= 6


def test_a_reader_racing_a_writer_loads_the_newest_commit(tmp_path, monkeypatch):
    """A training run checkpoints between the reader's reading meta.json and reading the weights."""
    old_agent, old_optimizer = _trained(0)
    new_agent, new_optimizer = _trained(1)
    path = tmp_path / "raced"
    registry.save_agent(old_agent, path, optimizer=old_optimizer)
    read_file = registry._read_verified
    commits = []

    def writer_commits_first(*args):
        if not commits:
            commits.append(registry.save_agent(new_agent, path, optimizer=new_optimizer))
        return read_file(*args)

    monkeypatch.setattr(registry, "_read_verified", writer_commits_first)
    loaded = registry.load_agent(path, check_env=False)
    assert commits and loaded.steps_trained == new_agent.steps_trained
    expected = new_agent.network.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.network.state_dict().items())
