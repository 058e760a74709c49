// k6 scenario: a new TLS connection (full handshake) for every request.
//
//   k6 run -e TARGET=https://localhost:8443/ -e VUS=16 -e DURATION=10s loadtest/k6/new-connection.js
//
// TARGET   URL to GET (default https://localhost:8443/, the quickstart)
// VUS      concurrent virtual users = concurrent connections (default 16)
// DURATION how long (default 10s)
// INSECURE "1" (default) skips certificate verification, for self-signed test certificates;
//          set "0" when the target's certificate chains to a system root.
//
// k6 counts requests, not handshakes: with `noConnectionReuse` every request opens a new
// connection, so http_reqs/s is also handshakes/s, and `http_req_tls_handshaking` is the
// handshake time. k6's Go TLS client keeps no session cache, so every handshake is full
// (checked against keyward_tls_handshakes_total{resumed="false"}).
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 16),
  duration: __ENV.DURATION || '10s',
  noConnectionReuse: true,
  insecureSkipTLSVerify: (__ENV.INSECURE || '1') === '1',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

const target = __ENV.TARGET || 'https://localhost:8443/';

export default function () {
  const res = http.get(target, { headers: { Connection: 'close' } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
