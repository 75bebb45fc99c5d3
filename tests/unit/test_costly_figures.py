"""The dashboard's scanning counts: read afresh while they count few rows, from the last
count once they count many (re-counted in the background, never waited for but the first
time)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.sync.operator.overview import (
    CACHE_FROM_ROWS,
    MIN_AGE_SECONDS,
    CostlyFigures,
    ScannedFigures,
)


class Counter:
    """Stands in for the scans of `customers` customers: each read counts `linked` one up and
    says it took 0.3 s."""

    def __init__(self, customers: int) -> None:
        self.customers = customers
        self.reads = 0
        self.fail = False

    async def __call__(self) -> ScannedFigures:
        if self.fail:
            raise OSError("database gone")
        self.reads += 1
        return ScannedFigures(
            customers_total=self.customers,
            linked=self.reads,
            done_24h=0,
            events_24h={},
            counted_at=datetime.now(UTC),
            took_seconds=0.3,
        )


def age(figures: CostlyFigures, seconds: float) -> None:
    value = figures._value
    assert value is not None
    figures._value = replace(value, counted_at=value.counted_at - timedelta(seconds=seconds))


async def settle(figures: CostlyFigures) -> None:
    if figures._refresh is not None:
        await figures._refresh


async def test_counts_of_few_rows_are_read_afresh_for_every_page() -> None:
    figures = CostlyFigures(Counter(customers=CACHE_FROM_ROWS // 2 - 10))
    assert [(await figures.read()).linked for _ in range(3)] == [1, 2, 3]


async def test_counts_of_many_rows_come_from_the_last_count_then_recount_behind() -> None:
    counter = Counter(customers=CACHE_FROM_ROWS)
    figures = CostlyFigures(counter)
    assert (await figures.read()).linked == 1  # the first page waits for the count
    assert (await figures.read()).linked == 1  # fresh enough: no scan
    assert counter.reads == 1
    age(figures, max(MIN_AGE_SECONDS, 100 * 0.3) + 1)
    assert (await figures.read()).linked == 1  # too old: answered at once, recounted behind
    await settle(figures)
    assert counter.reads == 2
    assert (await figures.read()).linked == 2


async def test_a_recount_that_fails_keeps_the_last_figures() -> None:
    counter = Counter(customers=1_000_000)
    figures = CostlyFigures(counter)
    await figures.read()
    age(figures, 3600)
    counter.fail = True
    assert (await figures.read()).linked == 1
    await settle(figures)
    assert (await figures.read()).linked == 1
    await figures.close()


async def test_closing_cancels_a_recount_in_flight() -> None:
    counter = Counter(customers=1_000_000)
    figures = CostlyFigures(counter)
    await figures.read()
    age(figures, 3600)
    started = asyncio.Event()
    original = counter.__call__

    async def slow() -> ScannedFigures:
        started.set()
        await asyncio.sleep(60)
        return await original()

    figures._read = slow
    await figures.read()
    await started.wait()
    await figures.close()
    assert figures._refresh is not None
    assert figures._refresh.cancelled()
