"""How ``bench/split.py`` sizes each topology's processes: the figures of bench/README.md's split
sections are quoted per sizing, so which process gets which number of workers is pinned here
(the benchmark itself runs by hand, never in the suite)."""

from __future__ import annotations

import pytest

from bench import split


def test_every_process_gets_the_same_workers_by_default() -> None:
    options = split.parse_options(["--workers", "3"])

    assert {name: split.process_settings(options, name)["WEB_WORKERS"] for name in split.TOPOLOGIES} == {
        "monolith": "3",
        "product_extracted": "3",
        "all_apart": "3",
    }


def test_split_workers_size_the_split_topologies_and_leave_the_monolith_alone() -> None:
    options = split.parse_options(["--workers", "2", "--split-workers", "1", "--threads", "6"])

    settings = {name: split.process_settings(options, name) for name in split.TOPOLOGIES}

    assert {name: values["WEB_WORKERS"] for name, values in settings.items()} == {
        "monolith": "2",
        "product_extracted": "1",
        "all_apart": "1",
    }
    assert {values["WEB_THREADS"] for values in settings.values()} == {"6"}
    assert "split topology 1" in split.sizing(options)


def test_split_workers_below_one_are_refused_before_anything_starts() -> None:
    with pytest.raises(SystemExit):
        split.parse_options(["--split-workers", "0"])
