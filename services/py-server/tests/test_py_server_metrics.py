"""Metrics exposition of the Python server (points_server.metrics)."""

from __future__ import annotations

import re

from points_server import LANGUAGE, __version__
from points_server.generated import protocol as gen
from points_server.generated.protocol import DB_OPS, DURATION_BUCKETS, ERRORS, METRICS
from points_server.metrics import CONTENT_TYPE, Metrics, make_registry, render


def new_metrics() -> Metrics:
    return Metrics({"language": LANGUAGE, "version": __version__})


def _exposition(m: Metrics) -> str:
    return render(make_registry(m)).decode()


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_every_family_has_help_and_type_from_the_protocol() -> None:
    text = _exposition(new_metrics())
    for spec in METRICS:
        assert f"# HELP {spec.name} {spec.help}\n" in text, spec.name
        assert f"# TYPE {spec.name} {spec.type}\n" in text, spec.name
    families = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
    assert families == [spec.name for spec in METRICS]


def test_label_series_exist_from_the_start() -> None:
    samples = _samples(_exposition(new_metrics()))
    for code in ERRORS:
        assert samples[f'points_errors_total{{code="{code}"}}'] == 0
    assert DB_OPS == ("connect", "read", "update", "lock")
    for op in DB_OPS:
        assert samples[f'points_db_errors_total{{op="{op}"}}'] == 0
    assert samples[f'points_build_info{{language="python",version="{__version__}"}}'] == 1


def test_no_created_series() -> None:
    assert "_created" not in _exposition(new_metrics())


def test_histogram_buckets_and_counts() -> None:
    m = new_metrics()
    for seconds in (0.0001, 0.0005, 0.003, 0.2, 7.0):
        m.observe(seconds)
    samples = _samples(_exposition(m))
    buckets = [k for k in samples if k.startswith("points_request_duration_seconds_bucket")]
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert samples['points_request_duration_seconds_bucket{le="0.0005"}'] == 2  # le is <=
    assert samples['points_request_duration_seconds_bucket{le="0.005"}'] == 3
    assert samples['points_request_duration_seconds_bucket{le="0.25"}'] == 4
    assert samples['points_request_duration_seconds_bucket{le="5.0"}'] == 4
    assert samples['points_request_duration_seconds_bucket{le="+Inf"}'] == 5
    assert samples["points_request_duration_seconds_count"] == 5
    assert abs(samples["points_request_duration_seconds_sum"] - 7.2036) < 1e-9


def test_values_follow_the_slots() -> None:
    m = new_metrics()
    m.add(gen.SLOT_CONNECTIONS_TOTAL, 3)
    m.add(gen.SLOT_CONNECTIONS_ACTIVE, 2)
    m.add(gen.SLOT_CONNECTIONS_ACTIVE, -1)
    m.add(gen.SLOT_REQUESTS_TOTAL, 2)
    m.add(gen.SLOT_ERRORS_TOTAL + gen.ERROR_INDEX["server-busy"])
    m.add_shared(gen.SLOT_DB_ERRORS_TOTAL + DB_OPS.index("read"))
    m.set(gen.SLOT_DB_UP, 1)
    m.add(gen.SLOT_UPDATES_TOTAL, 4)
    m.set(gen.SLOT_UPDATE_LOCK_HELD, 1)
    m.add(gen.SLOT_DB_READS_TOTAL, 5)
    s = _samples(_exposition(m))
    assert s["points_connections_total"] == 3
    assert s["points_connections_active"] == 1
    assert s["points_requests_total"] == 2
    assert s['points_errors_total{code="server-busy"}'] == 1
    assert sum(v for k, v in s.items() if k.startswith("points_errors_total")) == 1
    assert s['points_db_errors_total{op="read"}'] == 1
    assert s["points_db_up"] == 1
    assert s["points_updates_total"] == 4
    assert s["points_update_lock_held"] == 1
    assert s["points_db_reads_total"] == 5


def test_every_value_slot_belongs_to_one_series() -> None:
    slots = [spec.slot + i for spec in METRICS if spec.shape == "value"
             for i in range(len(spec.series))]
    assert sorted(slots) == list(range(gen.SLOTS_COUNT))


def test_content_type_is_text_format_0_0_4() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
