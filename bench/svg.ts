/**
 * A plain SVG chart for the benches' plots (docs/benchmarks.md): series of points as lines or dots,
 * linear axes from zero with round ticks. No dependency: the file is text, diffable and viewable
 * on GitHub as it is.
 */
export interface Series {
  name: string;
  points: Array<[number, number]>;
  style: 'line' | 'dots';
}

const W = 640;
const H = 400;
const M = { left: 70, right: 20, top: 40, bottom: 50 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

/** About five round steps from 0 to at least max. */
function ticks(max: number): number[] {
  const raw = (max || 1) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function svgChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points);
  const xt = ticks(Math.max(...all.map((p) => p[0]), 0));
  const yt = ticks(Math.max(...all.map((p) => p[1]), 0));
  const [xMax, yMax] = [xt.at(-1)!, yt.at(-1)!];
  const px = (x: number) => M.left + (x / xMax) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const f = (n: number) => n.toFixed(1);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    ...xt.map(
      (v) =>
        `<line x1="${f(px(v))}" x2="${f(px(v))}" y1="${M.top}" y2="${H - M.bottom}" stroke="#eee"/><text x="${f(px(v))}" y="${H - M.bottom + 16}" text-anchor="middle">${v}</text>`,
    ),
    ...yt.map(
      (v) =>
        `<line x1="${M.left}" x2="${W - M.right}" y1="${f(py(v))}" y2="${f(py(v))}" stroke="#eee"/><text x="${M.left - 6}" y="${f(py(v) + 4)}" text-anchor="end">${v}</text>`,
    ),
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.style === 'line') {
      const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${f(px(x))},${f(py(y))}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    } else {
      for (const [x, y] of s.points) out.push(`<circle cx="${f(px(x))}" cy="${f(py(y))}" r="1.6" fill="${color}"/>`);
    }
    out.push(`<text x="${W - M.right - 8}" y="${M.top + 14 + i * 16}" text-anchor="end" fill="${color}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The empirical CDF of xs as a line: (value, share of samples ≤ value, in %). */
export function cdf(xs: number[]): Array<[number, number]> {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.map((x, i) => [x, ((i + 1) / sorted.length) * 100]);
}
