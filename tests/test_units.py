"""Units people read (ktui.units): counts, durations, binary bucket labels, errno names, probe labels."""

from __future__ import annotations

from hypothesis import given, strategies as st

from ktui.units import (binary_ns, binary_size, bucket_label, errno_text, format_value, human_count, human_ns,
                        short_labels)


def test_counts_are_exact_below_ten_thousand_then_k_and_m():
    assert human_count(0) == "0"
    assert human_count(9999) == "9,999"
    assert human_count(12_345) == "12.3K"
    assert human_count(4_560_000) == "4.56M"
    assert human_count(999_999) == "1M"  # 999.999K rounds up to the next unit, never "1e+03K"
    assert human_count(7_890_000_000) == "7.89G"


@given(st.integers(min_value=0, max_value=10**18))
def test_a_count_fits_six_cells(n):
    assert len(human_count(n)) <= 6


def test_durations():
    assert human_ns(850) == "850ns"
    assert human_ns(12_300) == "12.3µs"
    assert human_ns(4_560_000) == "4.56ms"
    assert human_ns(1_230_000_000) == "1.23s"


def test_log2_buckets_are_labelled_as_powers_of_two():
    assert bucket_label(4096, 8192, latency=False) == "[4Ki, 8Ki)"
    assert bucket_label(16384, 32768, latency=True) == "[16µs, 32µs)"
    assert bucket_label(0, 1, latency=False) == "[0, 1)"
    assert bucket_label(512, 1024, latency=False) == "[512, 1Ki)"
    assert bucket_label(1 << 20, 1 << 21, latency=True) == "[1ms, 2ms)"
    assert bucket_label(1 << 30, 1 << 31, latency=False) == "[1Gi, 2Gi)"
    assert binary_size(3 << 10) == "3,072"  # not a power of two: a count, never a wrong binary label
    assert binary_ns(1500) == "1.5µs"


def test_linear_buckets_use_decimal_units():
    assert bucket_label(1000, 2000, latency=False, scale="linear") == "[1,000, 2,000)"
    assert bucket_label(1000, 2000, latency=True, scale="linear") == "[1µs, 2µs)"


def test_errno_names():
    assert errno_text(-2) == "-2 ENOENT"
    assert errno_text(-13) == "-13 EACCES"
    assert errno_text(3) == "3"  # a success value is a number
    assert errno_text(-99999) == "-99999"  # not an errno: the number alone
    assert format_value(-2, "errno") == "-2 ENOENT"
    assert format_value(b"/etc/passwd\0junk", "string") == "'/etc/passwd'"


def test_labels_that_fit_stay_whole():
    names = {0: "sys_enter_openat", 1: "sys_enter_openat2"}
    assert short_labels(names, 20) == names


def test_labels_never_make_two_names_equal():
    names = {0: "sys_enter_openat", 1: "sys_enter_openat2", 2: "sys_enter_getppid"}
    labels = short_labels(names, 8)
    assert len(set(labels.values())) == 3
    assert all(len(v) <= 8 for v in labels.values())
    assert labels[0].endswith("openat") and labels[1].endswith("openat2")
    merged = {0: "ftrace_sched_openat_a", 1: "ftrace_sched_openat_b"}
    labels = short_labels(merged, 12)
    assert labels == {0: "…ed_openat_a", 1: "…ed_openat_b"}  # the most of the tail that fits


@given(st.dictionaries(st.integers(0, 50), st.text("ab_:", min_size=1, max_size=40), min_size=1, max_size=8),
       st.integers(4, 30))
def test_labels_are_distinct_when_names_are(names, limit):
    labels = short_labels(names, limit)
    assert set(labels) == set(names)
    distinct_names = len(set(names.values()))
    if distinct_names == len(names):
        assert len(set(labels.values())) == len(names), labels


def test_negative_log2_bounds_read_as_their_mirror():
    assert bucket_label(-32, -16, latency=False) == "[-32, -16)"
    assert bucket_label(-8192, -4096, latency=False) == "[-8Ki, -4Ki)"
    assert bucket_label(-2048, -1024, latency=True) == "[-2µs, -1µs)"
