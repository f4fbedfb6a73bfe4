import numpy as np
import pytest
import torch

from skcl.replay import ClassBalancedMemory, ReservoirMemory


def offer(memory, ids, batch_size, task=0):
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        memory.add(batch[:, None].float(), batch, task=task)


def stored(memory):
    return sorted(memory.y[memory.filled()].tolist())


def algorithm_r(ids, capacity, batch_size, seed):
    """Vitter's algorithm R, one sample at a time, on the draws skcl makes."""
    torch.manual_seed(seed)
    memory, n = [None] * capacity, 0
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        draws = torch.rand(len(batch), dtype=torch.float64)
        for sample, u in zip(batch.tolist(), draws.tolist(), strict=True):
            n += 1
            slot = n - 1 if n <= capacity else int(np.floor(u * n))
            if slot < capacity:
                memory[slot] = sample
    return memory


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_reservoir_is_algorithm_r_sample_by_sample(batch_size):
    """Same draws, same memory, slot by slot: also when two samples of a batch
    draw the same slot (the later one stays)."""
    ids = torch.arange(500)
    torch.manual_seed(3)
    memory = ReservoirMemory(20)
    offer(memory, ids, batch_size)
    assert memory.y.tolist() == algorithm_r(ids, 20, batch_size, seed=3)
    assert memory.n_seen == 500 and len(memory) == 20


def test_reservoir_is_a_uniform_sample_of_the_stream():
    """Every sample of the stream is in memory with probability M / n."""
    n, capacity, trials = 300, 30, 400
    counts = np.zeros(n)
    torch.manual_seed(0)
    for _ in range(trials):
        memory = ReservoirMemory(capacity)
        offer(memory, torch.arange(n), 10)
        counts[stored(memory)] += 1
    frequency = counts / trials
    # Binomial(400, 0.1) per sample: sd 0.015; the thirds of the stream
    # (early, middle, late) average 100 samples each: sd 0.0015.
    thirds = frequency.reshape(3, -1).mean(1)
    np.testing.assert_allclose(thirds, capacity / n, atol=0.006)
    assert np.abs(frequency - capacity / n).max() < 0.075
    chi2 = ((counts - trials * 0.1) ** 2 / (trials * 0.1 * 0.9)).sum()
    assert chi2 < n + 4 * np.sqrt(2 * n)  # a chi-square with n dof


def test_reservoir_keeps_everything_while_it_fits():
    memory = ReservoirMemory(50)
    offer(memory, torch.arange(30), 8)
    assert memory.y[:30].tolist() == list(range(30)) and len(memory) == 30


def test_class_balanced_keeps_the_latest_of_each_class_of_each_task():
    memory = ClassBalancedMemory(per_class=2, n_classes=3)
    memory.begin_task(0)
    labels = torch.tensor([0, 1, 0, 0, 2, 1, 1])
    memory.add(torch.arange(7.0)[:, None], labels, task=0)
    rows = memory.filled()
    assert sorted(memory.X[rows, 0].tolist()) == [2, 3, 4, 5, 6]  # 0 and 1 left
    memory.end_task()
    assert memory.n_stored == 5 and len(memory) == 5
    memory.begin_task(1)
    memory.add(torch.tensor([[10.0]]), torch.tensor([2]), task=1)
    assert len(memory) == 6
    earlier = memory.sample(64, earlier_tasks=True)
    assert sorted(memory.X[earlier, 0].tolist()) == [2, 3, 4, 5, 6]
    assert memory.tasks[memory.filled()].tolist() == [0] * 5 + [1]


def test_reservoir_refers_to_the_rows_of_tasks_that_ended():
    memory = ReservoirMemory(100)
    memory.begin_task(0)
    offer(memory, torch.arange(30), 10, task=0)
    assert memory.sample(64, earlier_tasks=True) is None
    memory.begin_task(1)
    assert memory.sample(64, earlier_tasks=True).tolist() == list(range(30))
    offer(memory, torch.arange(30, 50), 10, task=1)
    assert memory.sample(64, earlier_tasks=True).tolist() == list(range(30))
    assert len(memory.sample(64)) == 50


def test_sample_draws_without_replacement_and_all_when_few():
    memory = ReservoirMemory(100)
    offer(memory, torch.arange(100), 10)
    rows = memory.sample(64)
    assert len(rows) == 64 and len(set(rows.tolist())) == 64
    small = ReservoirMemory(10)
    offer(small, torch.arange(5), 5)
    assert small.sample(64).tolist() == [0, 1, 2, 3, 4]
    assert ReservoirMemory(3).sample(64) is None


def test_nbytes_counts_every_row():
    memory = ReservoirMemory(10)
    memory.add(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), task=0)
    assert memory.nbytes == 10 * (3 * 4 + 8 + 8)


def test_validate_refuses_rows_that_disagree():
    memory = ReservoirMemory(10)
    offer(memory, torch.arange(10), 5)
    memory.validate()
    memory.y = memory.y[:4]
    with pytest.raises(ValueError, match="rows"):
        memory.validate()
