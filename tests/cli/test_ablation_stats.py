"""The ablation table's statistics on hand-made results: means, spreads, paired differences, the
significance mark and the throughput ratio, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from x_transformers.cli.ablation.report import (
    ablation_table,
    bucket_means,
    extrapolation_tables,
    findings,
    load_note,
)
from x_transformers.cli.ablation.stats import (
    mean_and_std,
    paired_difference,
    summarize,
    t_critical,
)


def result(variant, seed, bpb, speed=2000.0, status="done"):
    return {
        "variant": variant,
        "seed": seed,
        "status": status,
        "val_bpb": bpb,
        "tokens_per_second": speed,
        "params": 100,
    }


# base 2.0 / 2.5 / 3.0: mean 2.5, std 0.5
# noisy = base + (-0.5, 0.0, -1.0): differences mean -0.5, std 0.5, t = -sqrt(3) (not marked)
# better = base + (-1.0, -1.25, -0.75): mean -1.0, std 0.25, t = -4 sqrt(3) = -6.93 (> 4.303)
# worse = base + (0.25, 0.25, 0.25): std 0, t = +inf (marked)
HAND_MADE = [
    result("base", 0, 2.0, speed=1000.0),
    result("base", 1, 2.5, speed=3000.0),
    result("base", 2, 3.0, speed=2000.0),
    result("noisy", 0, 1.5, speed=500.0),
    result("noisy", 1, 2.5, speed=1500.0),
    result("noisy", 2, 2.0, speed=1000.0),
    result("better", 0, 1.0),
    result("better", 1, 1.25),
    result("better", 2, 2.25),
    result("worse", 0, 2.25),
    result("worse", 1, 2.75),
    result("worse", 2, 3.25),
    result("diverged", 0, None, status="diverged"),
    result("diverged", 1, 2.5),
]
ORDER = ["base", "noisy", "better", "worse", "diverged"]


def rows_by_name():
    return {row.name: row for row in summarize(HAND_MADE, ORDER, "base")}


def test_mean_and_sample_std():
    assert mean_and_std([2.0, 2.5, 3.0]) == (2.5, 0.5)
    assert mean_and_std([1.0]) == (1.0, None)
    assert mean_and_std([]) == (None, None)


def test_rows_hold_the_hand_computed_statistics():
    rows = rows_by_name()
    assert list(rows) == ORDER
    assert (rows["base"].bpb_mean, rows["base"].bpb_std, rows["base"].seeds) == (2.5, 0.5, 3)
    assert rows["base"].difference is None and rows["base"].speed_ratio == 1.0

    noisy = rows["noisy"].difference
    assert (noisy.mean, noisy.std, noisy.seeds) == (-0.5, 0.5, 3)
    assert noisy.t == pytest.approx(-math.sqrt(3), abs=1e-12) and noisy.significant is False
    assert rows["noisy"].speed_ratio == 0.5  # median 1000 over the base's median 2000

    better = rows["better"].difference
    assert better.mean == -1.0 and better.std == 0.25
    assert better.t == pytest.approx(-4 * math.sqrt(3), abs=1e-12) and better.significant is True

    worse = rows["worse"].difference
    assert worse.mean == 0.25 and worse.std == 0.0
    assert worse.t == math.inf and worse.significant is True

    diverged = rows["diverged"]
    assert (diverged.seeds, diverged.stopped, diverged.bpb_mean, diverged.bpb_std) == (
        1,
        1,
        2.5,
        None,
    )
    one = diverged.difference  # one paired seed (1): a difference but no spread, so no mark
    assert (one.mean, one.std, one.t, one.significant) == (0.0, None, None, None)


def test_the_table_and_the_findings_show_the_marks():
    rows = summarize(HAND_MADE, ORDER, "base")
    table = ablation_table(rows, "base").splitlines()
    assert table[0].startswith("| variant | params | val bpb")
    assert table[2] == "| base | 100 | 2.5000 ± 0.5000 | — | 1.00× |"
    assert table[3] == "| noisy | 100 | 2.0000 ± 0.5000 | -0.5000 ± 0.5000 | 0.50× |"
    assert table[4] == "| better | 100 | 1.5000 ± 0.6614 | -1.0000 ± 0.2500 * | 1.00× |"
    assert table[5] == "| worse | 100 | 2.7500 ± 0.5000 | +0.2500 ± 0.0000 * | 1.00× |"
    assert "1 of 2 runs diverged" in table[6] and "| +0.0000 |" in table[6]
    assert findings(rows, "base") == (
        "Beyond the seed spread: better than base: better (-1.0000); worse: worse (+0.2500)."
    )


def test_paired_difference_uses_only_seeds_both_finished():
    difference = paired_difference({0: 1.0, 1: 2.0, 5: 9.0}, {0: 0.5, 1: 1.0, 2: 7.0})
    assert (difference.mean, difference.seeds) == (0.75, 2)
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_t_critical_values():
    assert t_critical(2) == 4.303 and t_critical(1) == 12.706
    assert t_critical(35) == t_critical(30) == 2.042  # between rows: the stricter one
    assert t_critical(1000) == 1.960
    with pytest.raises(ValueError):
        t_critical(0)


def test_extrapolation_tables_from_hand_made_positions():
    def extrapolation(one, four):
        return {
            "seq_len": 2,
            "multiples": [1, 4],
            "bpb": {"1": sum(one) / 8, "4": sum(four) / 8},
            "positions": {"1": one, "4": four},
        }

    one = [3.0, 1.0, 1.0, 1.0, 1.0, 3.0, 2.0, 2.0]  # the same bytes with 2 bytes of context
    four = [3.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    results = [{"variant": "none", "seed": 0, "extrapolation": extrapolation(one, four)}]
    text = extrapolation_tables(results, ["none"], (1, 4))
    lines = text.splitlines()
    assert lines[0] == "| variant | 1× (2) | 4× (8) | 4× − 1× |"
    assert lines[2] == "| none | 1.7500 | 2.0000 | +0.2500 |"
    assert "| none | 2.0000 | 1.0000 | 2.0000 | 3.0000 |" in lines
    # same bytes, 4x minus 1x context, buckets 2-3, 4-5, 6-7: 1.0 - 1.0, 2.0 - 2.0, 3.0 - 2.0
    assert lines[-1] == "| none | +0.0000 | +0.0000 | +1.0000 |"
    assert lines[-3] == "| variant | 2–3 | 4–5 | 6–7 |"
    assert bucket_means([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [1.5, 3.5, 5.0]


def test_load_note_says_whether_throughput_compares_techniques(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    quiet = load_note([{"load_average": 1.5}, {"load_average": 0.5}, {}])
    assert quiet.startswith("Load: the 1-minute load average at the end of the runs ranged from")
    assert "0.5 to 1.5 on 2 cores" in quiet and "compares the techniques" in quiet
    assert "reflects the machine's load" in load_note([{"load_average": 4.0}])
    assert load_note([{}]) is None
