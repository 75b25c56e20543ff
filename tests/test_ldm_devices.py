"""Model residency: used modules go to the compute device, the least recently used ones leave it
when the weights would exceed the budget, nothing moves when compute device = offload device.

Runs on the CPU: the policy is driven with the "meta" device as the compute device and a recording
mover (meta tensors cannot be copied back), plus one real move onto "meta"."""
from __future__ import annotations

import gc

import torch
from torch import nn

from ldm import devices

META, CPU = torch.device("meta"), torch.device("cpu")
LINEAR_BYTES = (4 * 4 + 4) * 4  # nn.Linear(4, 4) in float32


class Recorder:
    """Stands in for the mover: remembers where each (tagged) module was sent, holds no module."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []

    def __call__(self, module: nn.Module, device: torch.device, dtype) -> None:
        self.where[module.tag] = device.type
        self.log.append((module.tag, device.type))


def tagged(tag: str) -> nn.Module:
    m = nn.Linear(4, 4)
    m.tag = tag
    return m


def policy(budget_modules: float) -> tuple[devices.Residency, Recorder]:
    rec = Recorder()
    return devices.Residency(META, CPU, budget=int(budget_modules * LINEAR_BYTES), move=rec), rec


def test_least_recently_used_module_is_offloaded_when_the_budget_would_be_exceeded():
    res, rec = policy(2.5)
    a, b, c, d = (tagged(t) for t in "abcd")
    res.use(a)
    res.use(b)
    assert rec.where == {"a": "meta", "b": "meta"} and res.resident() == [a, b]
    res.use(c)  # a is the oldest: it leaves before c arrives
    assert rec.log[-2:] == [("a", "cpu"), ("c", "meta")]
    assert res.resident() == [b, c] and res.resident_bytes() == 2 * LINEAR_BYTES
    res.use(b)  # b is now the most recent, so d evicts c
    res.use(d)
    assert rec.where == {"a": "cpu", "b": "meta", "c": "cpu", "d": "meta"}
    assert res.resident() == [b, d]


def test_using_a_resident_module_again_evicts_nothing():
    res, rec = policy(2)
    a, b = tagged("a"), tagged("b")
    for m in (a, b, a, b, a):
        res.use(m)
    assert ("a", "cpu") not in rec.log and ("b", "cpu") not in rec.log
    assert res.resident() == [b, a]


def test_a_module_larger_than_the_budget_still_runs_alone():
    res, rec = policy(1.5)
    a = tagged("a")
    big = nn.Linear(16, 16)
    big.tag = "big"
    res.use(a)
    res.use(big)
    assert rec.where == {"a": "cpu", "big": "meta"} and res.resident() == [big]


def test_no_budget_keeps_every_used_module():
    rec = Recorder()
    res = devices.Residency(META, CPU, budget=None, move=rec)
    mods = [tagged(str(i)) for i in range(6)]
    for m in mods:
        res.use(m)
    assert res.resident() == mods and "cpu" not in rec.where.values()


def test_offload_moves_back_and_forgets():
    res, rec = policy(3)
    a, b = tagged("a"), tagged("b")
    res.use(a)
    res.use(b)
    res.offload(a)
    assert rec.where["a"] == "cpu" and res.resident() == [b]
    res.offload_all()
    assert rec.where == {"a": "cpu", "b": "cpu"} and res.resident() == []


def test_a_module_its_owner_dropped_is_forgotten():
    res, rec = policy(2.5)
    a, b = tagged("a"), tagged("b")
    res.use(a)
    res.use(b)
    del a
    gc.collect()
    assert res.resident_bytes() == LINEAR_BYTES
    res.use(tagged("c"))  # fits beside b now: nothing is evicted (and no dead module is moved)
    assert [entry for entry in rec.log if entry[1] == "cpu"] == []


def test_same_compute_and_offload_device_tracks_nothing_and_only_casts():
    res = devices.Residency(CPU, CPU, budget=1)
    m = nn.Linear(4, 4).half()
    assert res.use(m) is m and m.weight.dtype == torch.float32
    assert not res.active and res.resident() == []


def test_real_move_onto_a_second_device():
    res = devices.Residency(META, CPU, budget=None)
    m = nn.Linear(4, 4).half()
    res.use(m)
    assert m.weight.device.type == "meta" and m.weight.dtype == torch.float32
    assert res.resident() == [m]


def test_to_device_goes_through_the_process_residency_for_the_current_device():
    devices.set_device("cpu")
    try:
        res = devices.residency()
        assert res.compute.type == "cpu" and not res.active
        m = nn.Linear(2, 2).half()
        assert devices.to_device(m) is m and m.weight.dtype == torch.float32
        assert devices.offload(m) is m and res.resident() == []
        devices.set_device("meta")
        assert devices.residency().compute.type == "meta" and devices.residency().active
    finally:
        devices.set_device(None)
    assert devices.residency().compute == devices.get_device()


def test_module_bytes_counts_floats_in_the_compute_dtype():
    m = nn.Linear(4, 4).half()
    assert devices.module_bytes(m) == LINEAR_BYTES // 2
    assert devices.module_bytes(m, torch.float32) == LINEAR_BYTES
