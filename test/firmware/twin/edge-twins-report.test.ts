import t from 'tap';
import { formatReport } from '../../../firmware/ops/format.js';
import { renderMetrics } from '../../../firmware/ops/metrics.js';
import type { StatusReport } from '../../../firmware/ops/report.js';

/** Edge mode's children's twins in what an operator reads: the `twins:` line of `outpost status`, the metrics. */

const report: StatusReport = {
  gatewayId: 'gw',
  variant: 'rpi4',
  pid: 1,
  uptimeSecs: 60,
  link: 'up',
  protocol: 'azure',
  lastUplinkError: null,
  lanes: [],
  drain: { ratePerSec: 0, etaSecs: null },
  ingest: { ratePerSec: 0, bytesPerSec: 0 },
  quota: { usedBytes: 1, quotaBytes: 2, usedPct: 50, lastsSecs: null, ttlSecs: 7200, limitedBy: 'none' },
  counters: { expired: 0, dropped: 0, corrupt: 0 },
  deadLetters: { total: 0, byReason: {} },
  throttled: { total: 0, byReason: {} },
  provisioning: null,
  update: null,
  edge: null,
  children: [],
  hubRefusals: {},
  devices: { ok: 0, faulted: [] },
  errors: [],
  metricsPort: null,
  page: null,
  childTwins: {
    syncs: 12,
    failures: 2,
    queued: 3,
    pushes: 5,
    refused: 1,
    pulls: 9,
    passedThrough: 4,
    lastError: 'twin of "child-7": no answer from IoT Hub in 30000 ms',
  },
};

t.test('outpost status shows the child twin syncs, their failures and the last one', async (t) => {
  const line = /^twins: {5}12 child syncs \(5 pushed, 9 read\), 3 queued, 2 failed, 1 refused; last: twin of "chi/m;
  t.match(formatReport(report), line);
  t.notMatch(formatReport({ ...report, childTwins: null }), /^twins:/m, 'no line in device mode');
});

t.test('metrics export the child twin counters', async (t) => {
  const text = renderMetrics(report, 1);
  t.match(text, /^outpost_child_twin_syncs_total 12$/m);
  t.match(text, /^outpost_child_twin_failures_total 2$/m);
  t.match(text, /^outpost_child_twin_refused_total 1$/m);
  t.match(text, /^outpost_child_twin_queued 3$/m);
  t.notMatch(renderMetrics({ ...report, childTwins: null }, 1), /outpost_child_twin/);
});
