/// <reference lib="dom" />
import uPlot from 'uplot';

/**
 * The technician's live view, bundled by scripts/page-assets.js into /assets/app.js. Text goes in with
 * textContent only: device ids, errors and lane names come from the field and are never parsed as HTML.
 */

interface Snapshot {
  version: string;
  linkSinceWallMs: number | null;
  report: {
    link: string;
    protocol: string;
    uptimeSecs: number;
    lanes: Array<{ lane: string; records: number; bytes: number; oldestAgeSecs: number }>;
    drain: { ratePerSec: number; etaSecs: number | null };
    ingest: { ratePerSec: number; bytesPerSec: number };
    quota: {
      usedBytes: number;
      quotaBytes: number;
      usedPct: number;
      lastsSecs: number | null;
      ttlSecs: number;
      limitedBy: string;
    };
    counters: { expired: number; dropped: number; corrupt: number };
    children: string[];
    errors: Array<{ atWallMs: number; source: string; message: string }>;
  };
  devices: Array<{ id: string; compatible: string; label: string | null; state: string; error: string | null }>;
  reported: Record<string, Record<string, unknown>>;
  /** The whole series, or null: then this event's own backlog is appended to the last one received. */
  history: Array<{ atWallMs: number; records: number; bytes: number }> | null;
  atWallMs: number;
}

const RELAY = 'outpost,gpio-relay';
const csrf = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? '';
let chart: uPlot | null = null;
let points: Array<{ atWallMs: number; records: number }> = [];
/** The server's series is at most a day of minutes plus ten minutes of seconds; appended points stay within it. */
const CHART_POINTS_MAX = 2_100;

function byId(id: string): HTMLElement {
  return document.getElementById(id)!;
}

function text(id: string, value: string): void {
  byId(id).textContent = value;
}

function duration(secs: number | null): string {
  if (secs === null) return '—';
  if (secs < 60) return `${Math.round(secs)}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ${Math.round(secs % 60)}s`;
  if (secs < 86_400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86_400)}d ${Math.floor((secs % 86_400) / 3600)}h`;
}

function row(cells: Array<string | Node>): HTMLTableRowElement {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    td.append(cell);
    tr.append(td);
  }
  return tr;
}

function list(id: string, items: string[], empty: string): void {
  const ul = byId(id);
  const item = (line: string) => Object.assign(document.createElement('li'), { textContent: line });
  ul.replaceChildren(...(items.length ? items : [empty]).map(item));
}

async function post(path: string, body: unknown = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body),
  });
  if (res.status === 401) location.assign('/login');
  return { status: res.status, body: await res.json().catch(() => null) };
}

function relayButton(id: string, on: boolean): HTMLButtonElement {
  const button = Object.assign(document.createElement('button'), { textContent: on ? 'Switch off' : 'Switch on' });
  button.dataset.device = id;
  button.addEventListener('click', async () => {
    const result = await post(`/api/devices/${encodeURIComponent(id)}/methods/switch`, { payload: { on: !on } });
    text('method-result', `${id}.switch: ${result.status} ${JSON.stringify(result.body)}`);
  });
  return button;
}

function renderDevices(s: Snapshot): void {
  const rows = s.devices.map((d) => {
    const reported = s.reported[d.id] ?? {};
    const shown = Object.entries(reported)
      .filter(([k]) => k !== 'state' && k !== 'fault')
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    const state = d.state === 'faulted' ? `faulted: ${d.error ?? ''}` : d.state;
    const action = d.compatible === RELAY && d.state === 'ok' ? relayButton(d.id, reported.on === true) : '';
    const tr = row([d.label ? `${d.id} (${d.label})` : d.id, state, shown.join(' '), action]);
    tr.dataset.device = d.id;
    if (d.state === 'faulted') tr.className = 'faulted';
    return tr;
  });
  byId('devices')
    .querySelector('tbody')!
    .replaceChildren(...rows);
}

function renderChart(s: Snapshot): void {
  if (s.history !== null) points = s.history;
  else points.push({ atWallMs: s.atWallMs, records: s.report.lanes.reduce((n, l) => n + l.records, 0) });
  if (points.length > CHART_POINTS_MAX) points = points.slice(-CHART_POINTS_MAX);
  const data: uPlot.AlignedData = [points.map((h) => h.atWallMs / 1000), points.map((h) => h.records)];
  const width = Math.min(byId('chart').clientWidth || 320, 900);
  if (!chart) {
    chart = new uPlot(
      {
        width,
        height: 180,
        axes: [{}, { size: 60 }],
        series: [{}, { label: 'backlog records', stroke: '#1f6feb', width: 2 }],
      },
      data,
      byId('chart'),
    );
  } else {
    chart.setData(data);
  }
}

function render(s: Snapshot): void {
  const r = s.report;
  text('link', `${r.link} (${r.protocol})`);
  text('link-since', s.linkSinceWallMs ? `since ${new Date(s.linkSinceWallMs).toLocaleTimeString()}` : '');
  byId('link').className = r.link === 'up' ? 'ok' : 'bad';
  text('drain', `${r.drain.ratePerSec} rec/s`);
  text('eta', duration(r.drain.etaSecs));
  text('ingest', `${r.ingest.ratePerSec} rec/s`);
  byId('lanes')
    .querySelector('tbody')!
    .replaceChildren(
      ...r.lanes.map((l) => row([l.lane, String(l.records), String(l.bytes), duration(l.oldestAgeSecs)])),
    );
  text('backlog-records', String(r.lanes.reduce((n, l) => n + l.records, 0)));
  text('quota', `${r.quota.usedBytes} of ${r.quota.quotaBytes} bytes (${r.quota.usedPct}%)`);
  text(
    'forecast',
    r.quota.lastsSecs === null
      ? 'Not growing.'
      : `Full in ${duration(r.quota.lastsSecs)} at this rate; TTL ${duration(r.quota.ttlSecs)} ` +
          `(${r.quota.limitedBy} removes data first).`,
  );
  text('counters', `expired ${r.counters.expired}, dropped ${r.counters.dropped}, corrupt ${r.counters.corrupt}`);
  renderDevices(s);
  list('children', r.children, 'none connected');
  const errors = r.errors.map((e) => `${new Date(e.atWallMs).toLocaleTimeString()} ${e.source}: ${e.message}`);
  list('errors', errors.reverse(), 'none');
  renderChart(s);
}

function connect(): void {
  const events = new EventSource('/api/events');
  events.addEventListener('message', (e: MessageEvent<string>) => render(JSON.parse(e.data) as Snapshot));
  // A closed stream is a lost session (401) or a stopped gateway: the login page says which.
  events.addEventListener('error', () => {
    if (events.readyState === EventSource.CLOSED) location.assign('/login');
  });
}

byId('wake').addEventListener('click', async () => {
  const result = await post('/api/wake');
  text('wake-result', result.status === 200 ? 'woken' : `failed: ${result.status}`);
});
byId('board-check').addEventListener('click', async () => {
  const result = await post('/api/board-check');
  text('board-check-result', JSON.stringify(result.body, null, 2));
});
connect();
