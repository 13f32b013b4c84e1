// The dashboard's first paint on a big queue, for bench/dashboard_first_paint.sh (which starts
// the server): submits arrays until JOBS jobs wait, then opens each view in Debian's chromium,
// five times, and prints the median time from navigation to the view drawn with its data (the
// page's 'allot:view-drawn' mark), and the median time of the queue API's first page.
//   node tests/browser/first_paint.mjs URL TOKEN JOBS [SCREENSHOT_DIR]
import { chromium } from 'playwright-core';

const [origin, token, jobsText, shots] = process.argv.slice(2);
const jobs = Number(jobsText);
const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
const get = async (url) => (await fetch(origin + url, { headers })).json();
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];

// Gangs of 64 GPUs in five accounts across the programmes: the pool's 264,608 GPUs run about
// 4,100 of them, so about jobs + 4,500 are submitted for `jobs` to wait.
const accounts = ['sfm-pretrain', 'univ-snu', 'startup-001', 'samsung-fab-ai', 'naver-hyperclova'];
const each = Math.ceil((jobs + 4500) / accounts.length);
for (const account of accounts) {
  const response = await fetch(`${origin}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({
    account, name: `${account}-sweep`, tasks: 8, gpus_per_task: 8, time_limit: '1d', array: `0-${each - 1}`,
    command: ['sleep', '86400'] }) });
  if (response.status !== 201) throw new Error(`submit to ${account}: ${response.status} ${await response.text()}`);
}
let status;
for (;;) {
  status = await get('/v1/scheduler');
  if (status.pending >= jobs && status.running > 0) break;
  await new Promise((resolve) => setTimeout(resolve, 500));
}
console.log(`queue: ${status.pending} pending, ${status.running} running on ${status.gpus} GPUs`);

const api = [];
for (let i = 0; i < 10; ++i) {
  const began = performance.now();
  await get(`/v1/queue?offset=${i * 50}&limit=50`);
  api.push(performance.now() - began);
}
console.log(`GET /v1/queue (a page of 50): the first, which works out the order, ${api[0].toFixed(1)} ms; ` +
  `the next 9 (the order cached): median ${median(api.slice(1)).toFixed(1)} ms`);
// A submit changes the number of pending jobs, so the next page works the order out again.
const rebuilds = [];
for (let i = 0; i < 5; ++i) {
  await fetch(`${origin}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({
    account: 'univ-snu', tasks: 8, gpus_per_task: 8, time_limit: '1d', command: ['true'] }) });
  const began = performance.now();
  await get('/v1/queue?limit=50');
  rebuilds.push(performance.now() - began);
}
console.log(`GET /v1/queue right after a submit (the order worked out again): median ${median(rebuilds).toFixed(1)} ms`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
for (const view of ['queue', 'pool', 'accounts', 'jobs']) {
  const drawn = [];
  const paints = [];
  let nodes = 0;
  for (let run = 0; run < 5; ++run) {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    await context.addInitScript((value) => sessionStorage.setItem('allot.token', value), token);
    const page = await context.newPage();
    await page.goto(`${origin}/#/${view}`);
    await page.waitForFunction(() => performance.getEntriesByName('allot:view-drawn').length > 0, null, { timeout: 60000 });
    const timing = await page.evaluate(() => ({
      drawn: performance.getEntriesByName('allot:view-drawn')[0].startTime,
      paint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
      nodes: document.getElementsByTagName('*').length,
    }));
    drawn.push(timing.drawn);
    paints.push(timing.paint);
    nodes = timing.nodes;
    if (shots && run === 0) await page.screenshot({ path: `${shots}/dashboard-national-${view}.png`, fullPage: false });
    await context.close();
  }
  console.log(`${view}: drawn with its data ${median(drawn).toFixed(0)} ms after navigation (median of 5; ` +
    `first contentful paint ${median(paints).toFixed(0)} ms), ${nodes} elements`);
}
await browser.close();
