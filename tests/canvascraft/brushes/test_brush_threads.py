"""A random brush stack gives each image its own result whatever other threads do at the same time."""

from __future__ import annotations

import hashlib
import threading

import torch

from canvascraft.brushes import BrushStack

RANDOM = [
    {"name": "resize", "params": {"size": 24}},
    {"name": "random_flip", "params": {"p": 0.5}},
    {"name": "gaussian_noise", "params": {"noise_ratio": 0.3}},
    {"name": "color_jitter", "params": {"brightness": 0.5, "contrast": 0.5}},
]


def test_random_stack_is_deterministic_across_threads() -> None:
    stack = BrushStack.from_spec(RANDOM)
    images = {f"key-{i}": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(40)}
    expected = {k: stack(v, seed=7, key=k) for k, v in images.items()}
    results: dict[str, list[torch.Tensor]] = {k: [] for k in images}
    barrier = threading.Barrier(4)

    def work(offset: int) -> None:
        barrier.wait()
        for _ in range(5):
            for k in list(images)[offset:] + list(images)[:offset]:  # every thread in another order
                results[k].append(stack(images[k], seed=7, key=k))

    threads = [threading.Thread(target=work, args=(i * 10,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wrong = [k for k, outs in results.items() for out in outs if not torch.equal(out, expected[k])]
    assert wrong == [], f"{len(wrong)} of {sum(map(len, results.values()))} results took another thread's draws"


def test_stack_split_at_first_random_brush_gives_the_composed_result() -> None:
    stack = BrushStack.from_spec(RANDOM)
    image = torch.rand(3, 40, 30, generator=torch.Generator().manual_seed(0))
    seed = int.from_bytes(hashlib.sha256(b"1:k").digest()[:8], "little")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        composed = stack._compose(image)
    assert torch.equal(stack(image, seed=1, key="k"), composed)  # same draws as before the split
