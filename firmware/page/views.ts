import { escapeHtml } from './http.js';

/**
 * HTML shells: markup only, no inline script or style (the CSP forbids both); app.js fills the main page.
 * The empty data: icon keeps browsers from asking for /favicon.ico, which would only be refused.
 */

function shell(title: string, head: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/page.css">${head}</head>
<body>${body}</body></html>
`;
}

export function loginPage(csrf: string, message: string | null): string {
  const note = message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : '';
  return shell(
    'outpost: log in',
    '',
    `<main class="login"><h1>outpost</h1>${note}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<label>User <input name="user" autocomplete="username" value="technician" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form></main>`,
  );
}

export function mainPage(csrf: string, gatewayId: string, version: string): string {
  const head = `<meta name="csrf-token" content="${escapeHtml(csrf)}">
<link rel="stylesheet" href="/assets/uPlot.min.css">
<script type="module" src="/assets/app.js"></script>`;
  return shell(
    `outpost ${gatewayId}`,
    head,
    `<header><h1>${escapeHtml(gatewayId)}</h1>
<span id="version">outpost ${escapeHtml(version)}</span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<button>Log out</button></form>
</header><main>
<section><h2>Uplink</h2><p>Link <b id="link">…</b> <span id="link-since"></span></p>
<p>Drain <b id="drain">…</b>, ETA <b id="eta">…</b>; ingest <b id="ingest">…</b></p>
<button id="wake">Wake the uplink</button> <span id="wake-result"></span></section>
<section><h2>Backlog</h2><table id="lanes">
<thead><tr><th>lane</th><th>records</th><th>bytes</th><th>oldest</th></tr></thead>
<tbody></tbody></table><p>Total <b id="backlog-records">…</b> records</p><div id="chart"></div></section>
<section><h2>Disk</h2><p><b id="quota">…</b></p><p id="forecast"></p><p id="counters"></p></section>
<section><h2>Devices</h2><table id="devices">
<thead><tr><th>device</th><th>state</th><th>reported</th><th></th></tr></thead>
<tbody></tbody></table><p id="method-result"></p></section>
<section><h2>Children</h2><ul id="children"></ul></section>
<section><h2>Recent errors</h2><ul id="errors"></ul></section>
<section><h2>Tools</h2><button id="board-check">Check the board file</button> <pre id="board-check-result"></pre>
<form method="post" action="/api/diagnostics"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<button>Download diagnostics</button></form></section>
</main>`,
  );
}
