"""MicroBatcher: grouping, adaptive window, max size, order, errors, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.serving.microbatch import MicroBatcher


class Recorder:
    """A batch function that records each call and doubles its inputs."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail

    def __call__(self, batch: list[int]) -> list[int]:
        self.calls.append(list(batch))
        if self.fail:
            raise ValueError("model exploded")
        return [x * 2 for x in batch]


async def test_concurrent_submits_share_one_call_in_order() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=0, max_size=64)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(8)))
    assert results == [i * 2 for i in range(8)]
    assert fn.calls == [list(range(8))]


async def test_lone_submit_is_not_delayed_by_the_window() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=500, max_size=64)
    start = time.perf_counter()
    assert await batcher.submit(3) == 6
    assert time.perf_counter() - start < 0.25  # no concurrency seen yet: flushed next loop turn
    assert fn.calls == [[3]]


async def test_window_gathers_staggered_arrivals_once_concurrency_is_seen() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=200, max_size=64)
    await asyncio.gather(*(batcher.submit(i) for i in range(8)))  # concurrency seen

    async def late(i: int) -> int:
        await asyncio.sleep(0.01 * i)
        return await batcher.submit(i)

    results = await asyncio.gather(*(late(i) for i in range(8)))
    assert results == [i * 2 for i in range(8)]
    assert fn.calls[1] == list(range(8))  # one call, although they arrived 10 ms apart


async def test_full_batch_does_not_wait_for_the_window() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=5000, max_size=4)
    await asyncio.gather(*(batcher.submit(i) for i in range(2)))  # concurrency seen
    start = time.perf_counter()
    assert await asyncio.gather(*(batcher.submit(i) for i in range(4))) == [0, 2, 4, 6]
    assert time.perf_counter() - start < 1.0
    assert fn.calls[1] == [0, 1, 2, 3]


async def test_back_to_no_wait_after_concurrency_ends() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=300, max_size=64)
    await asyncio.gather(*(batcher.submit(i) for i in range(3)))
    for i in range(8):  # lone requests: each waits the window until 8 batches of one
        await batcher.submit(i)
    start = time.perf_counter()
    await batcher.submit(42)
    assert time.perf_counter() - start < 0.2


async def test_window_expires_when_fewer_arrive() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=50, max_size=64)
    await asyncio.gather(*(batcher.submit(i) for i in range(4)))
    start = time.perf_counter()
    assert await asyncio.gather(batcher.submit(1), batcher.submit(2)) == [2, 4]
    assert time.perf_counter() - start >= 0.045
    assert fn.calls[1] == [1, 2]


@pytest.mark.parametrize("window_ms", [0, 5])
async def test_max_size_respected(window_ms: float) -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=window_ms, max_size=8)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [i * 2 for i in range(20)]
    assert [len(c) for c in fn.calls] == [8, 8, 4]
    assert [x for call in fn.calls for x in call] == list(range(20))


@pytest.mark.parametrize("in_thread", [False, True], ids=["inline", "thread"])
async def test_exception_reaches_every_waiter(in_thread: bool) -> None:
    batcher = MicroBatcher(Recorder(fail=True), window_ms=0, max_size=64, in_thread=in_thread)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in results)
    # the batcher still works afterwards
    batcher.set_fn(Recorder())
    assert await batcher.submit(4) == 8


async def test_wrong_result_count_is_an_error_not_a_hang() -> None:
    batcher = MicroBatcher(lambda batch: batch[:-1], window_ms=0, max_size=64)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_thread_mode_groups_and_orders() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=0, max_size=64, in_thread=True)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(6))) == [0, 2, 4, 6, 8, 10]
    assert fn.calls == [list(range(6))]


async def test_cancelled_waiter_is_dropped_before_the_call() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=100, max_size=64)
    await asyncio.gather(*(batcher.submit(i) for i in range(4)))  # concurrency seen: windows on
    doomed = asyncio.create_task(batcher.submit(99))
    kept = asyncio.create_task(batcher.submit(7))
    await asyncio.sleep(0.01)
    doomed.cancel()
    assert await kept == 14
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert fn.calls[-1] == [7]


async def test_cancelled_while_running_in_thread_does_not_break_others() -> None:
    def slow(batch: list[int]) -> list[int]:
        time.sleep(0.1)
        return [x + 1 for x in batch]

    batcher = MicroBatcher(slow, window_ms=0, max_size=64, in_thread=True)
    a = asyncio.create_task(batcher.submit(1))
    b = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.03)  # batch is running in the thread
    a.cancel()
    assert await b == 3
    with pytest.raises(asyncio.CancelledError):
        await a
    await batcher.aclose()


async def test_aclose_flushes_queued_items() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, window_ms=1000, max_size=64)
    await asyncio.gather(batcher.submit(0), batcher.submit(1))
    pending = asyncio.create_task(batcher.submit(5))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert await pending == 10


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(Recorder(), window_ms=0, max_size=0)
