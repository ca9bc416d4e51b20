import t from 'tap';
import { formatReport } from '../../../../firmware/ops/format.js';
import { renderMetrics } from '../../../../firmware/ops/metrics.js';
import type { StatusReport } from '../../../../firmware/ops/report.js';

/** Edge mode's pool in what an operator reads: the `edge:` line of `outpost status` and the metrics. */

const report: StatusReport = {
  gatewayId: 'gw',
  variant: 'rpi4',
  pid: 1,
  uptimeSecs: 60,
  link: 'up',
  protocol: 'azure',
  lastUplinkError: null,
  lanes: [{ lane: 'held', records: 120, bytes: 24_000, oldestAgeSecs: 30 }],
  drain: { ratePerSec: 10, etaSecs: 12 },
  ingest: { ratePerSec: 1, bytesPerSec: 200 },
  quota: { usedBytes: 1, quotaBytes: 2, usedPct: 50, lastsSecs: null, ttlSecs: 7200, limitedBy: 'none' },
  counters: { expired: 0, dropped: 0, corrupt: 0 },
  deadLetters: { total: 40, byReason: { 'identity-refused': 40 } },
  throttled: { total: 0, byReason: {} },
  provisioning: null,
  update: null,
  children: [],
  hubRefusals: {},
  devices: { ok: 0, faulted: [] },
  errors: [],
  metricsPort: null,
  page: null,
  edge: {
    connections: 48,
    connecting: 1,
    backoff: 1,
    parked: 1,
    refused: ['gone'],
    resent: 7,
    resendWaiting: 1,
    cloud: {
      c2dPending: 2,
      c2dDelivered: 7,
      c2dDeferred: 1,
      c2dRefused: 6,
      methodsPending: 1,
      methodsAnswered: 5,
      methodsRefused: 3,
      methodsTimedOut: 4,
    },
  },
};

t.test('outpost status names the pool, the parked and the refused identities', async (t) => {
  const edgeLine = new RegExp(
    '^edge: {6}48 up, 1 connecting, 1 in backoff, 1 parked, 1 refused \\(gone\\), ' +
      '7 re-sent from deadletter \\(1 waiting\\)$',
    'm',
  );
  t.match(formatReport(report), edgeLine);
  t.match(formatReport(report), /^dead: {6}40: identity-refused 40/m);
  const cloud =
    'C2D 2 held, 7 delivered, 1 deferred, 6 refused; ' + 'methods 1 pending, 5 answered, 3 refused, 4 unanswered';
  t.ok(formatReport(report).split('\n').includes(`cloud:     ${cloud}`), 'the cloud relay line');
  t.notMatch(formatReport({ ...report, edge: null }), /^edge:/m, 'no edge line in device mode');
});

t.test('metrics export the pool', async (t) => {
  const text = renderMetrics(report, 1);
  t.match(text, /^outpost_edge_connections 48$/m);
  t.match(text, /^outpost_edge_parked_identities 1$/m);
  t.match(text, /^outpost_edge_refused_identities 1$/m);
  t.match(text, /^outpost_edge_dead_letters_resent_total 7$/m);
  t.match(text, /^outpost_edge_resend_waiting_identities 1$/m);
  t.match(text, /^outpost_edge_c2d_pending 2$/m);
  t.match(text, /^outpost_edge_c2d_delivered_total 7$/m);
  t.match(text, /^outpost_edge_c2d_deferred_total 1$/m);
  t.match(text, /^outpost_edge_c2d_refused_total 6$/m);
  t.match(text, /^outpost_edge_methods_pending 1$/m);
  t.match(text, /^outpost_edge_methods_answered_total 5$/m);
  t.match(text, /^outpost_edge_methods_refused_total 3$/m);
  t.match(text, /^outpost_edge_methods_unanswered_total 4$/m);
  t.match(text, /^outpost_dead_letters_total\{reason="identity-refused"\} 40$/m);
});
