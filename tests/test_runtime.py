"""`CpuThreads`: torch's CPU threads sized to the cores other processes leave free (fake /proc readings, no sleeping)."""

import os

import pytest

from training.common.runtime import CpuThreads


class FakeMachine:
    """/proc/stat and /proc/self/stat of a machine with `cpus` CPUs, advanced tick by tick."""

    def __init__(self, cpus: int = 2):
        self.cpus, self.busy, self.idle, self.own, self.now = cpus, 0, 0, 0, 0.0

    def run(self, seconds: float, own_cores: float, other_cores: float, hz: int = 100):
        ticks = seconds * hz
        self.own += int(own_cores * ticks)
        self.busy += int((own_cores + other_cores) * ticks)
        self.idle += int((self.cpus - own_cores - other_cores) * ticks)
        self.now += seconds

    def read(self, path: str) -> str:
        if path == "/proc/stat":
            lines = [f"cpu  {self.busy} 0 0 {self.idle} 0 0 0 0 0 0"]
            lines += [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(self.cpus)]
            return "\n".join(lines) + "\nintr 0\n"
        return f"1234 (python (x)) R 1 1 1 0 -1 0 0 0 0 0 {self.own} 0 0 0 20 0 2 0"


@pytest.fixture
def machine(monkeypatch):
    fake = FakeMachine(cpus=2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    return fake


def governor(machine, chosen, others_at_start: float = 0.0, **kwargs):
    def probe(seconds):  # the start-up probe: what runs on the machine meanwhile
        machine.run(seconds, own_cores=0.0, other_cores=others_at_start)

    return CpuThreads(read=machine.read, clock=lambda: machine.now, sleep=probe, set_threads=chosen.append,
                      **kwargs)


def test_one_thread_beside_a_busy_process_and_back_to_two_when_it_stops(machine):
    chosen = []
    threads = governor(machine, chosen, others_at_start=1.0)
    assert threads.threads == 1 and chosen == [2, 1]
    machine.run(5, own_cores=1.0, other_cores=1.0)
    assert threads.update() == 1 and chosen == [2, 1]  # not re-checked before check_every
    machine.run(20, own_cores=1.0, other_cores=0.0)  # the other process ended
    assert threads.update() == 2 and chosen == [2, 1, 2]
    machine.run(25, own_cores=2.0, other_cores=0.0)  # our own two threads busy: no reason to drop one
    assert threads.update() == 2
    machine.run(25, own_cores=1.0, other_cores=0.9)
    assert threads.update() == 1


def test_idle_machine_keeps_every_core(machine):
    chosen = []
    assert governor(machine, chosen).threads == 2 and chosen == [2]


def test_fixed_count_and_several_processes_are_not_adaptive(machine):
    chosen = []
    fixed = governor(machine, chosen, requested=1, others_at_start=0.0)
    assert fixed.threads == 1 and not fixed.adaptive
    shared = governor(machine, chosen, num_processes=2, others_at_start=1.0)  # siblings would count as others
    assert shared.threads == 1 and not shared.adaptive


def test_without_proc_the_cores_are_used(machine):
    chosen = []
    threads = CpuThreads(read=lambda path: None, sleep=lambda s: None, set_threads=chosen.append)
    assert threads.threads == 2 and not threads.adaptive and threads.update() == 2


def test_follow_rechecks_after_optimizer_steps(machine):
    import torch

    chosen = []
    threads = governor(machine, chosen, check_every=0.0)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    threads.follow(optimizer)
    machine.run(1, own_cores=1.0, other_cores=1.0)
    parameter.grad = torch.ones(1)
    optimizer.step()
    assert chosen[-1] == 1


def test_onednn_primitive_cache_is_widened_unless_the_user_set_it(monkeypatch):
    from training.common.runtime import ONEDNN_CACHE_VARIABLE, widen_onednn_primitive_cache

    monkeypatch.delenv(ONEDNN_CACHE_VARIABLE, raising=False)
    assert widen_onednn_primitive_cache() == 4096 and os.environ[ONEDNN_CACHE_VARIABLE] == "4096"
    monkeypatch.setenv(ONEDNN_CACHE_VARIABLE, "256")
    assert widen_onednn_primitive_cache() == 256  # the user's setting wins
