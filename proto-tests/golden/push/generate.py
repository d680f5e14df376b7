#!/usr/bin/env python3
"""Golden push requests: the OpenMetrics lines of input.txt encoded, by protobuf's own
Python encoder (not tidemark), as

* remote_write.bin: a Prometheus remote write 1.0 WriteRequest (uncompressed), message
  types built here from their .proto definition (prometheus/prompb/types.proto,
  remote.proto);
* otlp.bin: an OTLP ExportMetricsServiceRequest, from opentelemetry-proto's classes.

The mapping from lines to messages is tidemark's documented one (docs/operations.md, "Push
exporters"), written again here from that description:

* remote write: one TimeSeries per sample line; its labels are the line's labels with a
  non-empty value plus __name__ (the sample name), sorted by name; one Sample
  (value, TIMESTAMP_MS).
* OTLP: one ResourceMetrics (service.name=tidemark), one ScopeMetrics (scope "tidemark");
  consecutive lines with the same sample name make one Metric named so, described by its
  family's # HELP; gauge families as Gauge, counter and histogram families as monotonic
  cumulative Sum (start START_NS); time TIME_NS; integer values as as_int, the others as
  as_double; every label as a string attribute, in line order.

Run from the repository root with protobuf and opentelemetry-proto installed
(requirements.txt beside this file):

    python3 -m venv /tmp/tm-push-venv
    /tmp/tm-push-venv/bin/pip install -r proto-tests/golden/push/requirements.txt
    /tmp/tm-push-venv/bin/python proto-tests/golden/push/generate.py          # rewrite
    /tmp/tm-push-venv/bin/python proto-tests/golden/push/generate.py --check  # exit 1 if stale
"""

import math
import os
import re
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
TIMESTAMP_MS = 1_750_000_000_123
TIME_NS = 1_750_000_000_123_456_789
START_NS = 1_749_999_000_000_000_000

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def unescape(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == '\\' and i + 1 < len(v):
            out.append('\n' if v[i + 1] == 'n' else v[i + 1])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return ''.join(out)


def samples():
    """(family help, family type, sample name, [(label, value)], value token) per line."""
    help_, type_, name = '', 'gauge', ''
    for line in open(os.path.join(HERE, 'input.txt'), encoding='utf-8'):
        line = line.rstrip('\n')
        if line.startswith('# HELP '):
            name, _, help_ = line[7:].partition(' ')
            help_ = unescape(help_)
            type_ = 'gauge'
        elif line.startswith('# TYPE '):
            n, _, type_ = line[7:].partition(' ')
            if n != name:
                name, help_ = n, ''
        elif line.startswith('#') or not line:
            continue
        else:
            m = LINE.match(line)
            assert m, line
            labels = [(k, unescape(v)) for k, v in LABEL.findall(m.group(2) or '')]
            yield help_, type_, m.group(1), labels, m.group(3)


def number(token):
    if re.fullmatch(r'-?[0-9]+', token) and -2**63 <= int(token) < 2**63:
        return int(token)
    return {'NaN': math.nan, '+Inf': math.inf, '-Inf': -math.inf}.get(token) or float(token)


def remote_write_classes():
    f = descriptor_pb2.FileDescriptorProto(name='tidemark_rw_golden.proto', package='prometheus',
                                           syntax='proto3')
    T = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        m = f.message_type.add(name=name)
        for number_, fname, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number_, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name

    message('Label', [(1, 'name', T.TYPE_STRING, T.LABEL_OPTIONAL, None),
                      (2, 'value', T.TYPE_STRING, T.LABEL_OPTIONAL, None)])
    message('Sample', [(1, 'value', T.TYPE_DOUBLE, T.LABEL_OPTIONAL, None),
                       (2, 'timestamp', T.TYPE_INT64, T.LABEL_OPTIONAL, None)])
    message('TimeSeries', [(1, 'labels', T.TYPE_MESSAGE, T.LABEL_REPEATED, '.prometheus.Label'),
                           (2, 'samples', T.TYPE_MESSAGE, T.LABEL_REPEATED, '.prometheus.Sample')])
    message('WriteRequest', [(1, 'timeseries', T.TYPE_MESSAGE, T.LABEL_REPEATED,
                              '.prometheus.TimeSeries')])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName('prometheus.WriteRequest'))


def remote_write():
    req = remote_write_classes()()
    for _, _, name, labels, token in samples():
        ts = req.timeseries.add()
        pairs = [(k, v) for k, v in labels if v] + [('__name__', name)]
        for k, v in sorted(pairs, key=lambda kv: kv[0].encode()):
            ts.labels.add(name=k, value=v)
        ts.samples.add(value=float(number(token)), timestamp=TIMESTAMP_MS)
    return req.SerializeToString(deterministic=True)


def otlp():
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key='service.name', value=common_pb2.AnyValue(string_value='tidemark'))
    sm = rm.scope_metrics.add()
    sm.scope.name = 'tidemark'
    metric, metric_key = None, None
    for help_, type_, name, labels, token in samples():
        is_sum = type_ in ('counter', 'histogram')
        if metric_key != (name, is_sum):
            metric = sm.metrics.add(name=name, description=help_)
            if is_sum:
                metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
                metric.sum.is_monotonic = True
            else:
                metric.gauge.SetInParent()
            metric_key = (name, is_sum)
        points = metric.sum.data_points if is_sum else metric.gauge.data_points
        p = points.add(time_unix_nano=TIME_NS)
        if is_sum:
            p.start_time_unix_nano = START_NS
        v = number(token)
        if isinstance(v, int):
            p.as_int = v
        else:
            p.as_double = v
        for k, val in labels:
            p.attributes.add(key=k, value=common_pb2.AnyValue(string_value=val))
    return req.SerializeToString(deterministic=True)


def main():
    check = '--check' in sys.argv[1:]
    stale = False
    for name, data in (('remote_write.bin', remote_write()), ('otlp.bin', otlp())):
        path = os.path.join(HERE, name)
        if check:
            with open(path, 'rb') as fh:
                if fh.read() != data:
                    print(f'{name} is stale')
                    stale = True
        else:
            with open(path, 'wb') as fh:
                fh.write(data)
            print(f'wrote {name}: {len(data)} bytes')
    sys.exit(1 if stale else 0)


if __name__ == '__main__':
    main()
