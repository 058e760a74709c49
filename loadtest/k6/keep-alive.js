// k6 scenario: keep-alive requests, one TLS connection per virtual user.
//
//   k6 run -e TARGET=https://localhost:8443/ -e VUS=16 -e DURATION=10s loadtest/k6/keep-alive.js
//
// TARGET, VUS, DURATION, INSECURE: as in new-connection.js. HTTP=2 forces HTTP/2 (k6 negotiates
// h2 by ALPN by default; HTTP=1.1 turns h2 off through the K6 environment, see README).
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  vus: Number(__ENV.VUS || 16),
  duration: __ENV.DURATION || '10s',
  insecureSkipTLSVerify: (__ENV.INSECURE || '1') === '1',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

const target = __ENV.TARGET || 'https://localhost:8443/';

export default function () {
  const res = http.get(target);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
