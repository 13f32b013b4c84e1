// The dashboard in a real browser: Debian's chromium, driven by playwright-core, against a real
// `allot server --dev` running real jobs on its embedded agent. Run by scripts/check-dashboard.sh
// (and so by .ci/run):
//   ALLOT=build/src/cli/allot node --test tests/browser/dashboard.test.mjs
//   SCREENSHOTS=docs/images also writes the screenshots docs/dashboard.md shows.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const allot = path.resolve(process.env.ALLOT || 'build/src/cli/allot');
const screenshots = process.env.SCREENSHOTS ? path.resolve(process.env.SCREENSHOTS) : '';
const work = mkdtempSync(path.join(tmpdir(), 'allot-dashboard-'));
let server;
let origin;
let operator;
let browser;
const tokens = {};

async function call(token, method, url, body) {
  const response = await fetch(origin + url, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function until(what, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const jobState = async (id) => (await call(operator, 'GET', `/v1/jobs/${id}`)).body.state;

async function signIn(token) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  // Every request the page makes, to check that none leaves the server.
  page.requests = [];
  page.on('request', (request) => page.requests.push(request.url()));
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  await page.goto(`${origin}/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Views' }).waitFor();
  return page;
}

// Opens a view and waits until it is drawn for that route (not the previous view, still shown
// while the new one loads).
async function open(page, route) {
  await page.goto(`${origin}/${route}`);
  await page.locator(`main[data-drawn="${route}"]`).waitFor({ timeout: 20000 });
}

async function shoot(page, name) {
  if (!screenshots) return;
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(screenshots, `dashboard-${name}.png`), fullPage: true });
}

before(async () => {
  server = spawn(allot, ['server', '--dev', '--data', path.join(work, 'data'), '--listen', '127.0.0.1:0',
    ...(process.env.REPORTS ? ['--reports', path.resolve(process.env.REPORTS)] : [])],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stderr.on('data', (chunk) => { output += chunk; });
  origin = await new Promise((resolve, reject) => {
    server.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/[0-9.]+:[0-9]+)/.exec(output);
      if (match) resolve(match[1]);
    });
    server.on('exit', (code) => reject(new Error(`allot server --dev exited (${code}): ${output}`)));
  });
  operator = readFileSync(path.join(work, 'data', 'operator.token'), 'utf8').trim();
  for (const [user, account] of [['alice', 'default'], ['bob', 'guest']]) {
    const reply = await call(operator, 'POST', '/v1/tokens', { role: 'tenant', account, user });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    tokens[user] = reply.body.token;
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
});

test('a wrong token is refused with a message, and nothing is shown', async () => {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.getByLabel('Token').fill('allot_not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not valid' }).waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Views' }).isVisible(), false);
  await page.close();
});

test('a job is followed live: its place and reason, its start, its output, its end', async () => {
  // The node's 8 GPUs are taken, so alice's next job waits, reserved for when the first ends.
  const blocker = (await call(tokens.alice, 'POST', '/v1/jobs', {
    name: 'blocker', gpus: 8, time_limit: '10m', command: ['sh', '-c', 'echo blocking; sleep 600'] })).body.ids[0];
  await until('the blocker to run', async () => (await jobState(blocker)) === 'running');
  const waiter = (await call(tokens.alice, 'POST', '/v1/jobs', {
    name: 'hello', gpus: 8, time_limit: '5m',
    command: ['sh', '-c', 'echo hello from allot; sleep 2; echo still here; sleep 2; echo bye'] })).body.ids[0];
  await until('a reservation', async () => (await call(operator, 'GET', `/v1/jobs/${waiter}`)).body.reason?.code === 'reserved');

  const page = await signIn(tokens.alice);
  await open(page, `#/queue`);
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: String(waiter), exact: true }) });
  await row.waitFor();
  const cells = await row.getByRole('cell').allInnerTexts();
  assert.equal(cells[0], '1', `its place in the queue: ${cells}`);
  assert.match(cells[8], /reserved/, 'why it waits');
  assert.match(cells[9], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, 'when it is expected to start');
  await shoot(page, 'queue');

  // The job's page: place, reason and expected start; then Cancel on the blocker, from its page.
  await open(page, `#/jobs/${waiter}`);
  await page.getByText('1 of 1').waitFor();
  await page.getByText(/reserved to start/).waitFor();
  await open(page, `#/jobs/${blocker}`);
  await page.locator('pre.log', { hasText: 'blocking' }).waitFor();  // the blocker's output
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('.badge', { hasText: 'cancelled' }).first().waitFor();
  assert.equal(await jobState(blocker), 'cancelled');

  // The waiter starts and ends on its own: the open page follows without a reload.
  await open(page, `#/jobs/${waiter}`);
  const started = Date.now();
  await page.locator('.badge', { hasText: 'running' }).first().waitFor({ timeout: 20000 });
  console.log(`page showed running ${Date.now() - started} ms after opening`);
  await page.locator('pre.log', { hasText: 'hello from allot' }).waitFor({ timeout: 20000 });
  await shoot(page, 'job');
  // Live: the page learns of the end through the change feed, within about a second of it.
  await until('the end', async () => (await jobState(waiter)) === 'completed', 30);
  const ended = Date.now();
  await page.locator('.badge', { hasText: 'completed' }).first().waitFor({ timeout: 5000 });
  console.log(`page showed completed ${Date.now() - ended} ms after the API did`);
  await page.locator('pre.log', { hasText: /still here\s+bye/ }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a tenant sees only its own jobs, in the page and through the API', async () => {
  const bobs = (await call(tokens.bob, 'POST', '/v1/jobs', {
    name: 'bobs-secret', gpus: 1, hold: true, command: ['true'] })).body.ids[0];
  const alices = (await call(tokens.alice, 'POST', '/v1/jobs', {
    name: 'alices-own', gpus: 1, hold: true, command: ['true'] })).body.ids[0];
  const page = await signIn(tokens.alice);
  for (const view of ['queue', 'jobs']) {
    await open(page, `#/${view}`);
    await page.getByRole('link', { name: String(alices), exact: true }).first().waitFor();
    assert.equal(await page.getByText('bobs-secret').count(), 0, `bob's job shows in alice's ${view} view`);
  }
  await open(page, `#/jobs/${bobs}`);
  await page.getByText('Could not load this view').waitFor();
  await page.getByText(`no job ${bobs}`, { exact: true }).waitFor();
  assert.equal((await call(tokens.alice, 'GET', `/v1/jobs/${bobs}`)).status, 404);
  assert.equal((await call(tokens.alice, 'POST', `/v1/jobs/${bobs}/cancel`)).status, 404);
  // Bob sees his, and releases and cancels it from the page.
  const bob = await signIn(tokens.bob);
  await open(bob, `#/jobs/${bobs}`);
  await bob.getByRole('button', { name: 'Release' }).waitFor();
  await bob.getByRole('button', { name: 'Cancel' }).click();
  await bob.locator('.badge', { hasText: 'cancelled' }).first().waitFor();
  await call(tokens.alice, 'POST', `/v1/jobs/${alices}/cancel`);
  await page.context().close();
  await bob.context().close();
});

test('live redraws keep what the user types, and signing out stays signed out', async () => {
  const page = await signIn(tokens.alice);
  await open(page, '#/queue');
  const user = page.getByLabel('User');
  await user.fill('ali');
  // Changes come in while the box has the focus: the view waits for the user.
  const held = (await call(tokens.alice, 'POST', '/v1/jobs', { name: 'typing', gpus: 1, hold: true, command: ['true'] })).body.ids[0];
  await page.waitForTimeout(1500);
  assert.equal(await user.inputValue(), 'ali');
  // Leaving the box lets the redraw happen: the new job shows.
  await page.getByRole('heading', { level: 1, name: 'Queue' }).click();
  await page.getByRole('link', { name: String(held), exact: true }).waitFor();
  // The skip link moves the focus to the view without leaving it.
  await page.keyboard.press('Tab');
  await page.getByRole('link', { name: 'Skip to content' }).focus();
  await page.keyboard.press('Enter');
  assert.match(page.url(), /#\/queue$/);
  // Signing out shows the sign-in form, and changes do not draw a view over it.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Token').waitFor();
  await call(tokens.alice, 'POST', `/v1/jobs/${held}/cancel`);
  await page.waitForTimeout(1500);
  assert.equal(await page.getByLabel('Token').isVisible(), true);
  assert.equal(await page.getByRole('heading', { level: 1, name: 'Queue' }).count(), 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('every view renders for an operator, with its plots, and the page asks no other host', async () => {
  const page = await signIn(operator);
  for (const [view, heading] of [['pool', 'Pool'], ['queue', 'Queue'], ['accounts', 'Accounts'], ['jobs', 'Jobs'], ['sim', 'Simulation']]) {
    await open(page, `#/${view}`);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    await shoot(page, view);
  }
  await open(page, `#/pool`);
  await page.getByRole('img', { name: /GPUs per pool/ }).waitFor();
  await page.getByRole('cell', { name: 'H200' }).first().waitFor();
  await open(page, `#/accounts`);
  await page.getByRole('img', { name: /GPU-hours per day/ }).waitFor();
  await page.getByRole('cell', { name: 'guest' }).first().waitFor();
  await page.getByRole('img', { name: /Burn-down of grant trial of guest/ }).waitFor();
  await page.getByRole('meter', { name: /trial: used/ }).waitFor();
  if (process.env.REPORTS) {
    // The Simulation view shows the newest report of --reports in a sandboxed frame, whole.
    await open(page, `#/sim`);
    const report = page.frameLocator('iframe.report');
    await report.getByRole('heading', { name: 'Summary' }).first().waitFor();
    await report.getByRole('heading', { name: 'Utilisation' }).first().waitFor();
    assert.ok(await report.locator('svg').count() > 0, 'the report has its plots');
    await shoot(page, 'sim');
  }
  // Keyboard: the views are reachable by Tab and Enter.
  await open(page, `#/pool`);
  await page.getByRole('heading', { level: 1, name: 'Pool' }).waitFor();
  await page.getByRole('link', { name: 'Queue' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Queue' }).waitFor();
  const foreign = page.requests.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith('data:'));
  assert.deepEqual(foreign, [], 'requests to other hosts');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
