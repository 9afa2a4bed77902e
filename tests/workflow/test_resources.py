"""Resource slots shared by the jobs one process drives."""

from __future__ import annotations

from pathlib import Path

from dataflywheel.settings import load_settings
from dataflywheel.workflow.executors import ResourcePool
from dataflywheel.workflow.plan import Resource


def test_slots_are_limited_shared_and_given_back(tmp_path: Path) -> None:
    pool = ResourcePool(load_settings(home=tmp_path, executor={"model_slots": 2, "compute_slots": 1}))
    assert pool.try_acquire(Resource.MODEL_SLOT, "job1/a") and pool.try_acquire(Resource.MODEL_SLOT, "job2/a")
    assert not pool.try_acquire(Resource.MODEL_SLOT, "job3/a")  # two deployments at most
    assert pool.try_acquire(Resource.MODEL_SLOT, "job1/a")  # a holder asking again keeps its slot
    assert pool.try_acquire(Resource.COMPUTE_SLOT, "job1/base-eval:a")
    assert not pool.try_acquire(Resource.COMPUTE_SLOT, "job1/customize:a")  # one computation at a time
    assert pool.try_acquire(Resource.COMPUTE_SLOT, "job1/customize:a", force=True)  # a resumed stage runs anyway
    pool.release(Resource.MODEL_SLOT, "job1/a")
    assert pool.try_acquire(Resource.MODEL_SLOT, "job3/a")
    assert pool.in_use() == {"model_slot": 2, "training_slot": 0, "compute_slot": 2}


def test_compute_slots_default_to_one_without_a_gpu(tmp_path: Path) -> None:
    import torch

    pool = ResourcePool(load_settings(home=tmp_path))
    expected = 4 * torch.cuda.device_count() if torch.cuda.is_available() else 1
    assert pool.capacity[Resource.COMPUTE_SLOT] == expected
