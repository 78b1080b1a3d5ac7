"""The remote write encoder, checked by decoding its bytes with Google's protobuf runtime (a
WriteRequest class built from prompb's field numbers, no protoc) and cramjam's snappy."""

from __future__ import annotations

import math
import struct
from typing import Any

import cramjam
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from rackwatch.engine.remote_write import STALE_NAN_BITS, WriteRequestEncoder, path_parts
from rackwatch.model import Batch, SeriesRegistry
from rackwatch.sources.twin import TwinSource
from rackwatch.twin import Twin


def _write_request_class() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="test_remote.proto", package="prometheus", syntax="proto3"
    )
    string, double, int64 = field.TYPE_STRING, field.TYPE_DOUBLE, field.TYPE_INT64
    messages: list[tuple[str, list[tuple[str, int, int | str]]]] = [
        ("Label", [("name", 1, string), ("value", 2, string)]),
        ("Sample", [("value", 1, double), ("timestamp", 2, int64)]),
        ("TimeSeries", [("labels", 1, ".prometheus.Label"), ("samples", 2, ".prometheus.Sample")]),
        ("WriteRequest", [("timeseries", 1, ".prometheus.TimeSeries")]),
    ]
    for name, fields in messages:
        message = proto.message_type.add(name=name)
        for fname, number, kind in fields:
            if isinstance(kind, str):  # a repeated message
                message.field.add(
                    name=fname,
                    number=number,
                    type=field.TYPE_MESSAGE,
                    label=field.LABEL_REPEATED,
                    type_name=kind,
                )
            else:
                message.field.add(name=fname, number=number, type=kind, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WRITE_REQUEST = _write_request_class()


def decode(data: bytes) -> list[tuple[dict[str, str], list[str], list[tuple[int, float]]]]:
    """(labels, label names in wire order, [(ts, value)]) per TimeSeries, in wire order."""
    request = WRITE_REQUEST()
    request.ParseFromString(data)
    return [
        (
            {label.name: label.value for label in series.labels},
            [label.name for label in series.labels],
            [(sample.timestamp, sample.value) for sample in series.samples],
        )
        for series in request.timeseries
    ]


def bits(value: float) -> int:
    found: int = struct.unpack("<Q", struct.pack("<d", value))[0]
    return found


@pytest.fixture
def registry() -> SeriesRegistry:
    reg = SeriesRegistry()
    reg.intern("c01/r01/s01", "power_watts")
    reg.intern("room/crac1", "crac_power_watts")
    reg.intern("host/db1/gpu0", "gpu_temperature_celsius")
    return reg


def test_labels_values_and_order(registry: SeriesRegistry) -> None:
    encoder = WriteRequestEncoder(registry, external_labels={"site": "paris"})
    # rows out of order, two series interleaved
    batch = Batch.of([2000, 1000, 1000, 3000, 2000], [0, 1, 0, 0, 1], [2.0, 10.0, 1.0, 3.0, 20.0])
    request = encoder.encode(batch)
    assert (request.n_samples, request.n_series, request.n_skipped) == (5, 2, 0)
    decoded = decode(request.data)
    assert decoded[0] == (
        {
            "__name__": "rackwatch_power_watts",
            "cluster": "c01",
            "entity": "c01/r01/s01",
            "rack": "r01",
            "server": "s01",
            "site": "paris",
        },
        ["__name__", "cluster", "entity", "rack", "server", "site"],
        [(1000, 1.0), (2000, 2.0), (3000, 3.0)],
    )
    assert decoded[1][0] == {
        "__name__": "rackwatch_crac_power_watts",
        "component": "crac1",
        "entity": "room/crac1",
        "site": "paris",
    }
    assert decoded[1][2] == [(1000, 10.0), (2000, 20.0)]
    for _labels, names, _samples in decoded:
        assert names == sorted(names) and names[0] == "__name__"


def test_null_is_a_stale_marker_by_default(registry: SeriesRegistry) -> None:
    batch = Batch.of([1000, 2000, 3000], [0, 0, 0], [1.0, math.nan, -math.inf])
    (_labels, _names, samples) = decode(WriteRequestEncoder(registry).encode(batch).data)[0]
    assert [ts for ts, _ in samples] == [1000, 2000, 3000]
    assert bits(samples[1][1]) == STALE_NAN_BITS
    assert samples[0][1] == 1.0 and samples[2][1] == -math.inf


def test_null_skipped_when_asked(registry: SeriesRegistry) -> None:
    batch = Batch.of([1000, 2000, 1000], [0, 0, 1], [1.0, math.nan, math.nan])
    request = WriteRequestEncoder(registry, nulls="skip").encode(batch)
    assert (request.n_samples, request.n_series, request.n_skipped) == (1, 1, 2)
    assert decode(request.data)[0][2] == [(1000, 1.0)]
    only_nulls = Batch.of([1000], [1], [math.nan])
    assert WriteRequestEncoder(registry, nulls="skip").encode(only_nulls).data == b""


def test_repeated_instant_keeps_the_last_row(registry: SeriesRegistry) -> None:
    batch = Batch.of([1000, 1000, 2000, 1000], [0, 0, 0, 0], [1.0, 2.0, 5.0, 3.0])
    request = WriteRequestEncoder(registry).encode(batch)
    assert request.n_skipped == 2
    assert decode(request.data)[0][2] == [(1000, 3.0), (2000, 5.0)]


def test_timestamps_of_every_varint_length(registry: SeriesRegistry) -> None:
    stamps = [0, 1, 127, 128, 16_383, 16_384, 1_796_000_000_000, 2**62, 2**63 - 1, -1, -(2**63)]
    batch = Batch.of(stamps, [2] * len(stamps), np.arange(len(stamps), dtype=float))
    samples = decode(WriteRequestEncoder(registry).encode(batch).data)[0][2]
    assert samples == sorted(zip(stamps, np.arange(len(stamps), dtype=float).tolist(), strict=True))


def test_host_paths_and_odd_metric_names() -> None:
    reg = SeriesRegistry()
    sid = reg.intern("host/db1/gpu0", "temp.c-1")
    labels = dict(WriteRequestEncoder(reg).labels(sid))
    assert labels == {
        "__name__": "rackwatch_temp_c_1",
        "entity": "host/db1/gpu0",
        "server": "db1",
        "component": "gpu0",
    }
    assert path_parts("c01") == ("c01", "", "", "")
    assert path_parts("c01/r01/s01/fan1/x") == ("c01", "r01", "s01", "x")


def test_unknown_series_refused_and_nothing_changes(registry: SeriesRegistry) -> None:
    encoder = WriteRequestEncoder(registry)
    before = encoder.encode(Batch.of([1000], [0], [1.0])).data
    with pytest.raises(ValueError, match=r"series ids 0\.\.3"):
        encoder.encode(Batch.of([1000, 1000], [0, 3], [1.0, 2.0]))
    with pytest.raises(ValueError, match="series ids -1"):
        encoder.encode(Batch.of([1000], [-1], [1.0]))
    assert encoder.encode(Batch.of([1000], [0], [1.0])).data == before


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ({"entity": "x"}, "set by rackwatch"),
        ({"__tenant": "x"}, "label name"),
        ({"9site": "x"}, "label name"),
        ({"site": ""}, "value of 1"),
    ],
)
def test_bad_external_labels(registry: SeriesRegistry, labels: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WriteRequestEncoder(registry, external_labels=labels)


def test_bad_null_policy(registry: SeriesRegistry) -> None:
    with pytest.raises(ValueError, match="nulls"):
        WriteRequestEncoder(registry, nulls="zero")


def test_empty_batch(registry: SeriesRegistry) -> None:
    request = WriteRequestEncoder(registry).encode(Batch.empty())
    assert (request.data, request.n_samples) == (b"", 0)


def test_series_registered_between_requests(registry: SeriesRegistry) -> None:
    encoder = WriteRequestEncoder(registry)
    encoder.encode(Batch.of([1000], [0], [1.0]))
    new = registry.intern("c02/r03/s04/fan2", "fan_rpm")
    decoded = decode(encoder.encode(Batch.of([1000, 1000], [new, 0], [4200.0, 1.0])).data)
    assert [labels["entity"] for labels, _, _ in decoded] == ["c01/r01/s01", "c02/r03/s04/fan2"]
    assert decoded[1][0]["component"] == "fan2" and decoded[1][2] == [(1000, 4200.0)]


def test_twin_batches_match_the_protobuf_runtime() -> None:
    """Real twin steps, with NULLs and absent rows, shuffled: the decoded request holds each
    (series, instant) once, in time order, with the batch's value bit for bit."""
    twin = Twin("small", seed=3, start_ms=1_796_000_000_000)
    registry = SeriesRegistry()
    source = TwinSource(twin, registry)
    batch = Batch.concat([source.read(3)[0], source.read(2)[0]])
    rng = np.random.default_rng(0)
    value = batch.value.copy()
    value[rng.choice(len(value), 20, replace=False)] = math.nan
    shuffled = Batch(batch.ts, batch.series, value).take(rng.permutation(len(batch)))
    encoder = WriteRequestEncoder(registry, external_labels={"site": "lab"})
    request = encoder.encode(shuffled)
    decoded = decode(
        cramjam.snappy.decompress_raw(cramjam.snappy.compress_raw(request.data)).read()
    )
    assert request.n_samples == len(batch) and request.n_series == len(set(batch.series.tolist()))
    got: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for labels, _names, samples in decoded:
        assert labels["site"] == "lab"
        key = (labels["entity"], labels["__name__"].removeprefix("rackwatch_"))
        got[key] = [(ts, bits(v)) for ts, v in samples]
    want: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for ts, sid, v in sorted(
        zip(batch.ts.tolist(), batch.series.tolist(), value.tolist(), strict=True)
    ):
        entity, metric = registry.key(sid)
        key = (entity, metric)
        want.setdefault(key, []).append((ts, STALE_NAN_BITS if math.isnan(v) else bits(v)))
    assert got == want
