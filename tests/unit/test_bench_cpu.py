"""The CPU accounting of ``bench/compare.py``: what it reads from /proc and what it divides.

The benchmark's conclusions about where the end-to-end ratio is bound rest on these figures, so
their parsing and arithmetic are pinned here (the benchmark itself runs by hand, never in the suite).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import compare
from bench.compare import Cpu, CpuReading, ProcStat, Round, Wrk

TICKS = compare.CLOCK_TICKS_PER_S


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int, cstime: int) -> str:
    """A /proc/<pid>/stat line laid out as proc(5) says, with distinct values around the four read."""
    fields = [str(pid), f"({comm})", "S", str(ppid), *[str(900 + n) for n in range(5, 14)]]
    fields += [str(utime), str(stime), str(cutime), str(cstime), "20", "0", "5", "0", "777"]
    return " ".join(fields) + "\n"


def test_a_stat_line_gives_pid_name_parent_and_the_four_cpu_fields() -> None:
    parsed = compare.parse_stat(stat_line(4242, "gunicorn: worker [floor-app]", 17, 120, 30, 7, 3))

    assert parsed == ProcStat(pid=4242, comm="gunicorn: worker [floor-app]", ppid=17, ticks=160)


def test_a_name_holding_parentheses_and_spaces_does_not_shift_the_fields() -> None:
    parsed = compare.parse_stat(stat_line(8, "a) S 99 (b", 1, 1, 2, 3, 4))

    assert (parsed.comm, parsed.ppid, parsed.ticks) == ("a) S 99 (b", 1, 10)


def test_processes_are_read_from_the_numbered_folders_only(tmp_path: Path) -> None:
    for pid, comm in ((12, "postgres"), (13, "wrk")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(stat_line(pid, comm, 1, 5, 5, 0, 0))
    (tmp_path / "self").mkdir()
    (tmp_path / "14").mkdir()  # ended between the listing and the read: no stat any more

    processes = sorted(compare.read_processes(tmp_path), key=lambda process: process.pid)

    assert [(process.pid, process.comm, process.ticks) for process in processes] == [
        (12, "postgres", 10),
        (13, "wrk", 10),
    ]


def test_a_tree_counts_its_root_and_every_descendant_and_nothing_else() -> None:
    processes = [
        ProcStat(1, "systemd", 0, 100_000),
        ProcStat(10, "gunicorn", 1, 5),  # the master: its cutime holds the workers it reaped
        ProcStat(11, "gunicorn", 10, 300),
        ProcStat(12, "gunicorn", 10, 200),
        ProcStat(13, "helper", 12, 7),
        ProcStat(20, "gunicorn", 1, 1_000),  # another app
    ]

    assert compare.tree_ticks(processes, 10) == 512
    assert compare.tree_ticks(processes, 12) == 207
    assert compare.tree_ticks(processes, 99) == 0
    assert compare.named_ticks(processes, "gunicorn") == 1_505


def test_cpu_between_two_readings_is_in_seconds_and_divided_per_successful_request() -> None:
    before = CpuReading(app_ticks=1_000, db_ticks=500, wrk_s=2.0)
    after = CpuReading(app_ticks=1_000 + 4 * TICKS, db_ticks=500 + 2 * TICKS, wrk_s=2.5)

    cpu = Cpu.between(before, after)
    per_request = cpu.per_request_ms(1_000)

    assert [cpu.app_s, cpu.db_s, cpu.wrk_s] == pytest.approx([4.0, 2.0, 0.5])
    assert [per_request.app_ms, per_request.db_ms, per_request.wrk_ms] == pytest.approx([4.0, 2.0, 0.5])
    assert per_request.total_ms == 6.0  # app and database; wrk's is the load's own


def test_without_a_database_server_its_share_is_zero_and_no_request_gives_no_figure() -> None:
    cpu = Cpu.between(CpuReading(0, None, 0.0), CpuReading(2 * TICKS, None, 0.0))

    assert cpu.db_s is None
    assert cpu.per_request_ms(500).total_ms == 4.0
    assert math.isnan(cpu.per_request_ms(0).app_ms)


def a_round(app: str, number: int, ok: int, app_s: float, db_s: float, *, drain_s: float | None = None) -> Round:
    wrk = Wrk(requests=ok, duration_s=5.0, p50_ms=1.0, p99_ms=2.0, socket_errors=0, timeouts=0, statuses={"201": ok})
    return Round("order-e2e", number, app, wrk, drain_s=drain_s, cpu=Cpu(app_s, db_s, 0.1))


def test_the_cpu_ratio_is_the_floors_cpu_per_request_over_the_shops() -> None:
    floor = a_round("floor", 1, ok=1_000, app_s=3.0, db_s=1.0)  # 4 ms a request
    shop = a_round("shop", 1, ok=250, app_s=2.0, db_s=0.5, drain_s=1.25)  # 10 ms an order, deliveries included

    assert compare.cpu_ratio(shop, floor) == pytest.approx(0.4)
    assert compare.ratio(shop, floor) == pytest.approx((250 / 6.25) / (1_000 / 5.0))


def test_the_summary_gives_medians_of_rounds_per_pair_and_per_app() -> None:
    rounds = [
        a_round("floor", 1, ok=1_000, app_s=3.0, db_s=1.0),
        a_round("shop", 1, ok=250, app_s=2.0, db_s=0.5, drain_s=0.0),
        a_round("floor", 2, ok=1_000, app_s=5.0, db_s=1.0),
        a_round("shop", 2, ok=200, app_s=2.0, db_s=1.0, drain_s=0.0),
        a_round("floor", 3, ok=1_000, app_s=4.0, db_s=1.0),
        a_round("shop", 3, ok=500, app_s=4.0, db_s=2.0, drain_s=0.0),
    ]

    summary = compare.summarize(rounds)["order-e2e"]

    pair = summary["pairs"]["shop/floor"]
    assert pair["ratios"] == pytest.approx([0.25, 0.2, 0.5])
    assert pair["median"] == pytest.approx(0.25)
    assert pair["cpu_ratios"] == pytest.approx([0.4, 0.4, 5 / 12])
    assert pair["cpu_median"] == pytest.approx(0.4)
    assert summary["cpu_ms"]["shop"] == pytest.approx({"app_ms": 8.0, "db_ms": 4.0, "total_ms": 12.0, "wrk_ms": 0.4})
    assert summary["cpu_ms"]["floor"]["total_ms"] == pytest.approx(5.0)
