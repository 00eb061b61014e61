/**
 * A key's or tenant's requests per UTC day as a plain SVG bar chart (no library): one bar
 * per day, stacked by what the answers were — success (1xx–3xx), refused or client error
 * (4xx, keygate's own 401/403/429 included) and server error (5xx) — with the busiest day's
 * count on the axis. For people who cannot see it: the SVG is an image with a text summary
 * (role="img", aria-label), every bar has a <title> with the day's figures, and the same
 * figures are a table under "Show as a table".
 *
 *   host.append(usageChart(days, { caption: 'Requests per day, last 30 days (UTC)' }));
 *
 * Built with createElementNS and text nodes only (the console's Trusted Types policy allows
 * no HTML strings); colours come from console.css (.usage-chart .bar-ok …).
 */
import { h, uid } from './dom.js';

/** @typedef {{ date: string, total: number, byRoute: Record<string, Record<string, number>> }} UsageDay */

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {...(Element | string)} children
 */
function svg(tag, attributes, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, String(value));
  el.append(...children);
  return el;
}

/** The kind of answer a counter name stands for: `2xx`, `404`→… by its first digit. @param {string} cls */
function kindOf(cls) {
  const first = cls[0];
  if (first === '5') return 'error';
  if (first === '4') return 'refused';
  return 'ok';
}

/** A day's totals by kind, and its counts by class over every route. @param {UsageDay} day */
export function summarize(day) {
  const kinds = { ok: 0, refused: 0, error: 0 };
  /** @type {Record<string, number>} */
  const classes = {};
  for (const counts of Object.values(day.byRoute)) {
    for (const [cls, n] of Object.entries(counts)) {
      kinds[kindOf(cls)] += n;
      classes[cls] = (classes[cls] ?? 0) + n;
    }
  }
  return { kinds, classes };
}

/** "11 × 2xx, 1 × 401". @param {Record<string, number>} classes */
function classText(classes) {
  return Object.entries(classes)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([cls, n]) => `${n} × ${cls}`)
    .join(', ');
}

/** "1 request", "12 requests". @param {number} n */
const requests = (n) => `${n} request${n === 1 ? '' : 's'}`;

const KINDS = /** @type {const} */ ([
  ['ok', 'Success (1xx–3xx)'],
  ['refused', 'Refused or client error (4xx)'],
  ['error', 'Server error (5xx)'],
]);

/**
 * @param {UsageDay[]} days oldest first, every day present (the admin API's `days`)
 * @param {{ caption: string }} options
 */
export function usageChart(days, options) {
  const width = 900;
  const height = 180;
  const top = 18;
  const bottom = 22;
  const plot = height - top - bottom;
  const step = width / Math.max(days.length, 1);
  const max = Math.max(0, ...days.map((d) => d.total));
  const total = days.reduce((sum, d) => sum + d.total, 0);
  const busiest = days.reduce((best, d) => (d.total > best.total ? d : best), days[0] ?? { date: '', total: 0, byRoute: {} });
  const captionId = uid('usage-caption');
  const summary =
    total === 0
      ? `No requests in these ${days.length} days.`
      : `${requests(total)} in ${days.length} days, on ${days.filter((d) => d.total > 0).length} of them; the busiest was ${busiest.date} with ${requests(busiest.total)}.`;

  const chart = svg('svg', { class: 'usage-svg', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': captionId });
  chart.append(svg('line', { class: 'axis', x1: 0, y1: top + plot + 0.5, x2: width, y2: top + plot + 0.5 }));
  chart.append(svg('text', { class: 'axis-label', x: 2, y: 12 }, max === 0 ? '0' : `${max}`));
  // A date under every 7th day, counted back from today (the last bar).
  days.forEach((day, i) => {
    if ((days.length - 1 - i) % 7 !== 0) return;
    const anchor = i === days.length - 1 ? 'end' : i * step < 40 ? 'start' : 'middle';
    const x = anchor === 'end' ? width - 2 : anchor === 'start' ? 2 : i * step + step / 2;
    chart.append(svg('text', { class: 'axis-label', x: x.toFixed(2), y: height - 6, 'text-anchor': anchor }, day.date));
  });
  days.forEach((day, i) => {
    if (day.total === 0 || max === 0) return;
    const { kinds, classes } = summarize(day);
    const group = svg('g', { class: 'bar', 'data-date': day.date, 'data-total': day.total }, svg('title', {}, `${day.date}: ${requests(day.total)} (${classText(classes)})`));
    let y = top + plot;
    for (const [kind] of KINDS) {
      const n = kinds[kind];
      if (n === 0) continue;
      // At least a pixel, so a single request on a busy month still shows.
      const barHeight = Math.max(1, (n / max) * plot);
      y -= barHeight;
      group.append(svg('rect', { class: `bar-${kind}`, x: (i * step + step * 0.15).toFixed(2), y: y.toFixed(2), width: (step * 0.7).toFixed(2), height: barHeight.toFixed(2) }));
    }
    chart.append(group);
  });

  const legend = h(
    'ul',
    { class: 'usage-legend' },
    KINDS.map(([kind, label]) => h('li', {}, h('span', { class: `swatch bar-${kind}`, 'aria-hidden': 'true' }), label)),
  );

  const routes = [...new Set(days.flatMap((d) => Object.keys(d.byRoute)))].sort();
  const table = h(
    'table',
    { class: 'list usage-table' },
    h('caption', { class: 'visually-hidden' }, `${options.caption}, as a table`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day (UTC)'), h('th', { scope: 'col' }, 'Requests'), routes.map((r) => h('th', { scope: 'col' }, r)))),
    h(
      'tbody',
      {},
      [...days].reverse().map((day) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row', 'data-label': 'Day (UTC)' }, day.date),
          h('td', { 'data-label': 'Requests' }, String(day.total)),
          routes.map((r) => h('td', { 'data-label': r }, day.byRoute[r] ? classText(day.byRoute[r]) : '—')),
        ),
      ),
    ),
  );

  return h(
    'figure',
    { class: 'usage-chart' },
    h('figcaption', { id: captionId }, h('strong', {}, options.caption), ' ', h('span', { class: 'muted usage-summary' }, summary)),
    chart,
    legend,
    h('details', { class: 'usage-details' }, h('summary', {}, 'Show as a table'), h('div', { class: 'table-host' }, table)),
  );
}
