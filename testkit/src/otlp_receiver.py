#!/usr/bin/env python3
"""A real OTLP/gRPC metrics receiver for tests/push.rs: grpcio's server with the
MetricsService from opentelemetry-proto (PyPI), nothing of tidemark's.

    otlp_receiver.py PORT OUT_FILE

Listens on 127.0.0.1:PORT; every Export request becomes one JSON line in OUT_FILE:
{"points": [[metric name, kind, [[key, value], ...], value, time_unix_nano,
start_time_unix_nano, is_monotonic, temporality, resource, scope], ...]} with attributes in
request order and every value as a string (repr of a double, or the integer), then a flush.
Prints "ready" on stdout once listening; runs until killed.
"""

import json
import sys
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc


class Receiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, out):
        self.out = out

    def Export(self, request, context):
        points = []
        for rm in request.resource_metrics:
            resource = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof('data')
                    data = getattr(m, kind)
                    monotonic = getattr(data, 'is_monotonic', False)
                    temporality = getattr(data, 'aggregation_temporality', 0)
                    for p in data.data_points:
                        which = p.WhichOneof('value')
                        value = repr(p.as_double) if which == 'as_double' else str(p.as_int)
                        attrs = [[kv.key, kv.value.string_value] for kv in p.attributes]
                        points.append([m.name, kind, attrs, value, p.time_unix_nano,
                                       p.start_time_unix_nano, monotonic, temporality,
                                       resource, sm.scope.name, m.description])
        self.out.write(json.dumps({'points': points}) + '\n')
        self.out.flush()
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    out = open(path, 'a', encoding='utf-8')
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[('grpc.max_receive_message_length', 64 << 20)])
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Receiver(out), server)
    server.add_insecure_port(f'127.0.0.1:{port}')
    server.start()
    print('ready', flush=True)
    server.wait_for_termination()


if __name__ == '__main__':
    main()
