// Small SVG charts, drawn with DOM calls (no markup strings): lines over time and horizontal
// stacked bars. Colours come from the stylesheet (classes series-0 .. series-7), so the page
// needs no inline style. Each chart is an image with a label for screen readers, and a <title>
// on each mark for a pointer's tooltip.

const kSvg = 'http://www.w3.org/2000/svg';

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(kSvg, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children) element.append(child);
  return element;
}

function titled(element, text) {
  element.append(svg('title', {}, text));
  return element;
}

// Round steps for an axis from 0 to max: 1, 2 or 5 times a power of ten.
function ticks(max, count = 5) {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const values = [];
  for (let value = 0; value <= max + step / 2; value += step) values.push(value);
  return values;
}

export function formatNumber(value) {
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) < 1) return String(Number(value.toPrecision(2)));
  return value.toFixed(Math.abs(value) < 10 ? 1 : 0);
}

// series: [{name, points: [[x, y], ...]}]; x are Unix seconds. Optional dashed reference lines
// in `references` (same shape).
export function lineChart({ label, series, references = [], yLabel = '', width = 640, height = 240 }) {
  const margin = { left: 56, right: 16, top: 12, bottom: 40 };
  const all = [...series, ...references].flatMap((s) => s.points);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart' });
  if (all.length === 0) {
    root.append(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' }, 'no data yet'));
    return root;
  }
  const xs = all.map((p) => p[0]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) { x0 -= 43200; x1 += 43200; }
  const yTicks = ticks(Math.max(...all.map((p) => p[1])));
  const yMax = yTicks[yTicks.length - 1] || 1;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const sx = (x) => margin.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y) => margin.top + plotH - (y / yMax) * plotH;
  for (const value of yTicks) {
    root.append(svg('line', { x1: margin.left, x2: width - margin.right, y1: sy(value), y2: sy(value), class: 'grid' }));
    root.append(svg('text', { x: margin.left - 6, y: sy(value) + 4, 'text-anchor': 'end', class: 'axis' }, formatNumber(value)));
  }
  // Dates under the points themselves (days), six at most.
  // Labels closer than 60 px to the last one drawn, or naming the same day, are left out.
  const days = [...new Set(xs)].sort((a, b) => a - b);
  let lastX = -Infinity;
  let lastDay = '';
  for (const x of days) {
    const day = new Date(x * 1000).toISOString().slice(5, 10);
    if (sx(x) - lastX < 60 || day === lastDay) continue;
    root.append(svg('text', { x: sx(x), y: height - margin.bottom + 16, 'text-anchor': 'middle', class: 'axis' }, day));
    lastX = sx(x);
    lastDay = day;
  }
  if (yLabel) {
    root.append(svg('text', { x: 12, y: margin.top + plotH / 2, transform: `rotate(-90 12 ${margin.top + plotH / 2})`,
      'text-anchor': 'middle', class: 'axis' }, yLabel));
  }
  const draw = (s, index, dashed) => {
    const path = s.points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
    root.append(titled(svg('path', { d: path, class: `line series-${index % 8}${dashed ? ' reference' : ''}` }), s.name));
    for (const p of s.points) {
      if (dashed) continue;
      root.append(titled(svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, class: `dot series-${index % 8}` }),
        `${s.name}: ${formatNumber(p[1])} on ${new Date(p[0] * 1000).toISOString().slice(0, 10)}`));
    }
  };
  series.forEach((s, i) => draw(s, i, false));
  references.forEach((s, i) => draw(s, series.length + i, true));
  return root;
}

// rows: [{label, parts: [{name, value}]}]: one horizontal bar per row, its parts stacked, scaled
// to the largest row total.
export function stackedBars({ label, rows, width = 640 }) {
  const rowH = 22;
  const labelW = 150;
  const height = rows.length * rowH + 8;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart bars' });
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((sum, p) => sum + p.value, 0)));
  rows.forEach((row, i) => {
    const y = 4 + i * rowH;
    root.append(svg('text', { x: labelW - 8, y: y + 14, 'text-anchor': 'end', class: 'axis' }, row.label));
    let x = labelW;
    row.parts.forEach((part, j) => {
      const w = ((width - labelW - 8) * part.value) / max;
      if (w > 0) {
        root.append(titled(svg('rect', { x, y, width: w, height: rowH - 6, class: `bar ${part.kind || `series-${j % 8}`}` }),
          `${row.label}: ${part.name} ${formatNumber(part.value)}`));
      }
      x += w;
    });
  });
  return root;
}

// A legend as HTML: a swatch and a name per series.
// `kinds`, when given, names each swatch's class instead of the series colours.
export function legend(names, { dashed = false, kinds = [], first = 0 } = {}) {
  const list = document.createElement('ul');
  list.className = 'legend';
  names.forEach((name, i) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch ${kinds[i] || `series-${(first + i) % 8}`}${dashed ? ' reference' : ''}`;
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, name);
    list.append(item);
  });
  return list;
}
