// The dashboard's views. Each takes the route's parameters and the signed-in principal and
// resolves to the element to show; app.js swaps it in when it is complete, and draws it again
// whenever the server reports a change. Everything a view writes goes through text nodes, never
// markup, so no job name or log line can inject anything into the page.

import { api } from './api.js';
import { formatNumber, legend, lineChart, stackedBars } from './charts.js';

// Counts in tables: exact, with thousands separators (46,080, not 46k).
const count = (value) => Math.round(value).toLocaleString('en');

// h('a', {href: '#/x', class: 'y'}, 'text', child...): an element; null and false are skipped.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const now = () => Date.now() / 1000;

export function when(seconds) {
  if (!seconds) return '—';
  const date = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function span(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

function table(caption, headings, rows, { numeric = [] } = {}) {
  return h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headings.map((text, i) => h('th', { scope: 'col', class: numeric.includes(i) ? 'num' : null }, text)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: headings.length, class: 'empty' }, 'none'))
      : rows.map((cells) => h('tr', {}, cells.map((cell, i) => h('td', { class: numeric.includes(i) ? 'num' : null }, cell))))));
}

const plural = (count, noun) => `${count} ${noun}${count === 1 ? '' : 's'}`;
const jobLink = (id) => h('a', { href: `#/jobs/${id}` }, String(id));
const stateBadge = (state) => h('span', { class: `badge state-${state}` }, state);

// ---- Pool -------------------------------------------------------------------------------------

async function renderPool() {
  const [{ pools }, { nodes: down }, { nodes: draining }] = await Promise.all([
    api('/v1/pools'), api('/v1/nodes?state=down'), api('/v1/nodes?state=draining')]);
  const idle = (c) => Math.max(0, c.gpus - c.gpus_allocated - c.gpus_down - c.gpus_draining);
  const sum = (list, key) => list.reduce((total, item) => total + (typeof key === 'function' ? key(item) : item[key]), 0);
  const sites = [...new Set(pools.map((p) => p.site || '—'))];
  const models = [...new Set(pools.map((p) => p.gpu_model))];
  const columns = ['GPUs', 'allocated', 'idle', 'draining', 'down'];
  const figures = (c) => [count(c.gpus), count(c.gpus_allocated), count(idle(c)), count(c.gpus_draining), count(c.gpus_down)];
  const totals = (list) => ({ gpus: sum(list, 'gpus'), gpus_allocated: sum(list, 'gpus_allocated'),
    gpus_draining: sum(list, 'gpus_draining'), gpus_down: sum(list, 'gpus_down') });
  const all = totals(pools);
  const broken = [...down, ...draining].sort((a, b) => a.name.localeCompare(b.name));
  const shown = broken.slice(0, 200);
  return h('section', { 'aria-labelledby': 'pool-title' },
    h('h1', { id: 'pool-title' }, 'Pool'),
    h('p', { class: 'summary' },
      `${count(all.gpus)} GPUs in ${plural(pools.length, 'pool')} at ${plural(sites.length, 'site')}: `,
      `${count(all.gpus_allocated)} allocated, ${count(idle(all))} idle, `,
      `${count(all.gpus_draining)} draining, ${count(all.gpus_down)} down.`),
    legend(['allocated', 'idle', 'draining (idle)', 'down'], { kinds: ['gpus-allocated', 'gpus-idle', 'gpus-draining', 'gpus-down'] }),
    stackedBars({
      label: 'GPUs per pool: allocated, idle, draining and down',
      rows: pools.map((c) => ({ label: c.name, parts: [
        { name: 'allocated', value: c.gpus_allocated, kind: 'gpus-allocated' }, { name: 'idle', value: idle(c), kind: 'gpus-idle' },
        { name: 'draining', value: c.gpus_draining, kind: 'gpus-draining' }, { name: 'down', value: c.gpus_down, kind: 'gpus-down' }] })),
    }),
    table('Per GPU model', ['GPU model', ...columns],
      models.map((model) => [model, ...figures(totals(pools.filter((c) => c.gpu_model === model)))]), { numeric: [1, 2, 3, 4, 5] }),
    sites.map((site) => table(`Site ${site}`, ['Pool', 'GPU model', 'nodes (up)', ...columns],
      pools.filter((c) => (c.site || '—') === site).map((c) => [c.name, c.gpu_model, `${count(c.nodes)} (${count(c.nodes_up)})`, ...figures(c)]),
      { numeric: [2, 3, 4, 5, 6, 7] })),
    h('h2', {}, 'Pods'),
    pools.map((c) => h('details', { class: 'pods' },
      h('summary', {}, `${c.name}: ${plural(c.pods.length, 'pod')}`),
      table(`Pods of ${c.name}`, ['pod', 'nodes (up)', ...columns],
        c.pods.map((pod) => [pod.name || '(default)', `${count(pod.nodes)} (${count(pod.nodes_up)})`, ...figures(pod)]),
        { numeric: [1, 2, 3, 4, 5, 6] }))),
    table(`Nodes down or draining (${broken.length}${broken.length > shown.length ? `, the first ${shown.length} shown` : ''})`,
      ['Node', 'pool', 'state', 'GPUs in use', 'reason'],
      shown.map((n) => [n.name, n.pool, stateBadge(n.state), `${n.gpus_allocated} of ${n.gpus}`, n.reason || '—'])));
}

// ---- Queue ------------------------------------------------------------------------------------

const kPageSize = 50;

async function renderQueue(params, who, navigate) {
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const query = new URLSearchParams({ offset, limit: kPageSize });
  for (const key of ['user', 'account']) if (params.get(key)) query.set(key, params.get(key));
  const [page, running] = await Promise.all([
    api(`/v1/queue?${query}`),
    api(`/v1/jobs?state=running&limit=200${params.get('user') ? `&user=${encodeURIComponent(params.get('user'))}` : ''}${params.get('account') ? `&account=${encodeURIComponent(params.get('account'))}` : ''}`)]);
  const filter = h('form', { class: 'filters', role: 'search', onsubmit: (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams();
    for (const key of ['user', 'account']) if (form.get(key)) next.set(key, form.get(key));
    navigate(`#/queue?${next}`);
  } },
    h('label', {}, 'User ', h('input', { name: 'user', value: params.get('user') || '', autocomplete: 'off' })),
    h('label', {}, 'Account ', h('input', { name: 'account', value: params.get('account') || '', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Filter'));
  const go = (to) => {
    const next = new URLSearchParams(params);
    next.set('offset', to);
    navigate(`#/queue?${next}`);
  };
  const last = Math.min(page.total, offset + page.jobs.length);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Queue pages' },
    h('button', { type: 'button', disabled: offset === 0, onclick: () => go(Math.max(0, offset - kPageSize)) }, 'Previous'),
    h('span', {}, page.total ? `${offset + 1}–${last} of ${page.total}` : 'nothing pending'),
    h('button', { type: 'button', disabled: last >= page.total, onclick: () => go(offset + kPageSize) }, 'Next'));
  const t = now();
  return h('section', { 'aria-labelledby': 'queue-title' },
    h('h1', { id: 'queue-title' }, 'Queue'),
    h('p', { class: 'summary' },
      `${page.queue_length} jobs in line, ${page.total} of them ${who.role === 'operator' && !params.get('user') && !params.get('account') ? 'shown (and held jobs)' : 'yours to see'}; `,
      `${page.running} running. Last scheduling pass at ${when(page.last_pass_time)}.`),
    filter,
    table('Pending, in the order the scheduler looks at them', ['#', 'job', 'name', 'user', 'account', 'GPUs', 'class', 'waiting', 'why it waits', 'expected start'],
      page.jobs.map((job) => [job.position ?? 'held', jobLink(job.id), job.name, job.user, job.account, job.gpus, job.priority_class,
        span(t - job.submit_time), h('span', { class: 'reason' }, h('strong', {}, job.reason.code), ' ', job.reason.message),
        job.expected_start ? when(job.expected_start) : '—']),
      { numeric: [0, 5] }),
    pager,
    table(`Running (${running.jobs.length}${running.jobs.length === 200 ? ', the first 200 shown' : ''})`,
      ['job', 'name', 'user', 'account', 'GPUs', 'pool', 'nodes', 'started', 'time left'],
      running.jobs.map((job) => [jobLink(job.id), job.name, job.user, job.account, job.gpus, job.pool,
        job.nodes.length <= 3 ? job.nodes.join(', ') : `${job.nodes.slice(0, 3).join(', ')} and ${job.nodes.length - 3} more`,
        when(job.start_time), span(job.start_time + job.time_limit - t)]),
      { numeric: [4] }));
}

// ---- Accounts ---------------------------------------------------------------------------------

const kDay = 86400;

// A grant's burn-down: GPU-hours left from its start to now, the pace that would spend it exactly
// by its end, and where the pace so far leads.
function burnDown(grant, t) {
  const left = grant.gpu_hours - grant.used_gpu_hours;
  const rate = grant.used_gpu_hours / Math.max(1, t - grant.start);
  const references = [];
  if (grant.end) references.push({ name: 'even pace to its end', points: [[grant.start, grant.gpu_hours], [grant.end, 0]] });
  if (rate > 0) {
    const until = grant.end ? Math.min(grant.end, t + left / rate) : t + left / rate;
    references.push({ name: 'at its pace so far', points: [[t, left], [until, Math.max(0, left - rate * (until - t))]] });
  }
  return lineChart({ label: `Burn-down of grant ${grant.name} of ${grant.account}: GPU-hours left over time`, yLabel: 'GPU-hours left',
    series: [{ name: 'GPU-hours left', points: [[grant.start, grant.gpu_hours], [Math.max(grant.start, t), left]] }], references });
}

async function renderAccounts(params, who, navigate) {
  const start = new Date((Math.floor(now() / kDay) - 29) * kDay * 1000).toISOString().slice(0, 10);
  const [{ accounts }, usage] = await Promise.all([api('/v1/accounts'), api(`/v1/usage?period=day&start=${start}`)]);
  const depth = (account) => account.path.split('/').filter(Boolean).length - 1;
  const rows = [];
  for (const account of accounts) {
    const pools = Object.entries(account.quotas);
    const name = h('span', { class: `depth-${Math.min(depth(account), 5)}` }, account.name);
    const share = account.fair_share_factor.toFixed(2);
    if (pools.length === 0) rows.push([name, account.weight, share, '—', '', '', '', '']);
    pools.forEach(([pool, q], i) => rows.push([i === 0 ? name : '', i === 0 ? account.weight : '', i === 0 ? share : '', pool,
      count(q.nominal), count(q.allocated), count(q.borrowed), count(q.lent)]));
  }
  // Programmes: the accounts at the top of the tree (public, each industry owner, startups...).
  const top = accounts.filter((a) => a.parent === '');
  const byDay = new Map();
  for (const row of usage.rows) {
    if (!byDay.has(row.account)) byDay.set(row.account, []);
    byDay.get(row.account).push([row.period_start, row.gpu_hours]);
  }
  const used = (name) => (byDay.get(name) || []).reduce((total, p) => total + p[1], 0);
  const nominal = (a) => Object.values(a.quotas).reduce((total, q) => total + q.nominal, 0);
  const usedTotal = top.reduce((total, a) => total + used(a.name), 0) || 1;
  const nominalTotal = top.reduce((total, a) => total + nominal(a), 0) || 1;
  const grants = accounts.flatMap((a) => a.grants.map((g) => ({ ...g, account: a.name })));
  const t = now();
  return h('section', { 'aria-labelledby': 'accounts-title' },
    h('h1', { id: 'accounts-title' }, 'Accounts'),
    h('h2', {}, 'Use over the last 30 days (GPU-hours per day)'),
    legend(top.map((a) => a.name)),
    lineChart({ label: 'GPU-hours per day per programme, last 30 days', yLabel: 'GPU-hours',
      series: top.map((a) => ({ name: a.name, points: byDay.get(a.name) || [] })) }),
    h('h2', {}, 'Each programme’s share of use against its share of nominal quota'),
    legend(top.map((a) => a.name)),
    stackedBars({ label: 'Share of use and share of nominal quota per programme',
      rows: [
        { label: 'share of use', parts: top.map((a) => ({ name: a.name, value: (100 * used(a.name)) / usedTotal })) },
        { label: 'share of nominal', parts: top.map((a) => ({ name: a.name, value: (100 * nominal(a)) / nominalTotal })) }] }),
    table('Quotas and use, per pool (GPUs). Fair share: 1 unused, 0.5 at its share, near 0 far over it',
      ['account', 'weight', 'fair share', 'pool', 'nominal', 'in use', 'borrowed', 'lent'], rows, { numeric: [1, 2, 4, 5, 6, 7] }),
    h('h2', {}, 'Grants'),
    grants.length === 0 ? null : h('form', { class: 'filters', onsubmit: (event) => event.preventDefault(), onchange: (event) => {
      navigate(`#/accounts?grant=${encodeURIComponent(event.target.value)}`);
    } }, h('label', {}, 'Burn-down of ', h('select', { name: 'grant' }, grants.map((g, i) => h('option', {
      value: i, selected: String(i) === (params.get('grant') || '0') }, `${g.account} / ${g.name}`))))),
    grants.length === 0 ? null : [legend(['GPU-hours left']), legend(['even pace to its end', 'at its pace so far'], { dashed: true, first: 1 }),
      burnDown(grants[Number(params.get('grant')) || 0] || grants[0], t)],
    table('Grants burn down against their end dates', ['grant', 'account', 'used', 'GPU-hours used of granted', 'ends', 'at this rate, spent'],
      grants.map((g) => {
        const rate = g.used_gpu_hours / Math.max(1, t - g.start);
        const spentAt = rate > 0 ? g.start + (g.gpu_hours / rate) : null;
        const late = g.end && spentAt && spentAt > g.end;
        return [g.name, g.account,
          h('meter', { min: 0, max: g.gpu_hours, value: g.used_gpu_hours, 'aria-label': `${g.name}: used ${formatNumber(g.used_gpu_hours)} of ${formatNumber(g.gpu_hours)} GPU-hours` }),
          `${formatNumber(g.used_gpu_hours)} of ${formatNumber(g.gpu_hours)}`, g.end ? when(g.end) : 'no end',
          spentAt ? `${when(spentAt)}${late ? ' (after its end: unused hours expire)' : ''}` : 'not started'];
      })));
}

// ---- Jobs -------------------------------------------------------------------------------------

async function renderJobs(params) {
  const [live, ended] = await Promise.all([api('/v1/jobs?state=pending,running&limit=500'), api('/v1/jobs?state=ended&limit=50')]);
  const rows = (jobs) => jobs.map((job) => [jobLink(job.id), job.name, stateBadge(job.state), job.user, job.account, job.gpus,
    when(job.submit_time), job.state === 'pending' ? job.reason?.code ?? '' : job.state === 'running' ? job.nodes.join(', ') : (job.exit_code ?? '—')]);
  return h('section', { 'aria-labelledby': 'jobs-title' },
    h('h1', { id: 'jobs-title' }, 'Jobs'),
    h('form', { class: 'filters', onsubmit: (event) => {
      event.preventDefault();
      const id = new FormData(event.target).get('id');
      if (id) location.hash = `#/jobs/${encodeURIComponent(id)}`;
    } }, h('label', {}, 'Job id ', h('input', { name: 'id', inputmode: 'numeric', autocomplete: 'off' })), h('button', { type: 'submit' }, 'Open')),
    table(`Pending and running (${live.jobs.length === 500 ? 'the first 500 shown; the Queue view pages through all of them' : live.jobs.length})`, ['job', 'name', 'state', 'user', 'account', 'GPUs', 'submitted', 'reason / nodes / exit'], rows(live.jobs), { numeric: [5] }),
    table('Ended, newest first (50 at most; `allot history` pages further)', ['job', 'name', 'state', 'user', 'account', 'GPUs', 'submitted', 'exit code'],
      rows(ended.jobs.slice().reverse()), { numeric: [5] }));
}

// A job's output, followed while the job runs: one follower per (job, task, stream), kept across
// redraws of the view so that the text already read stays and only what is new is fetched.
const followers = new Map();

export function stopFollowers() {
  for (const follower of followers.values()) clearTimeout(follower.timer);
  followers.clear();
}

function follow(id, task, stream) {
  const key = `${id}/${task}/${stream}`;
  if (followers.has(key)) return followers.get(key);
  const follower = { element: h('pre', { class: 'log', tabindex: 0, 'aria-label': `output of job ${id}, task ${task}, ${stream}` }), offset: 0, timer: 0 };
  // A follower that was stopped while its request was out stops when the answer comes.
  const stopped = () => followers.get(key) !== follower;
  const poll = async () => {
    try {
      const chunk = await api(`/v1/jobs/${id}/logs?task=${task}&stream=${stream}&offset=${follower.offset}`);
      if (stopped()) return;
      if (chunk.data) {
        const atEnd = follower.element.scrollTop + follower.element.clientHeight >= follower.element.scrollHeight - 4;
        follower.element.append(chunk.data);
        if (atEnd) follower.element.scrollTop = follower.element.scrollHeight;
      }
      follower.offset = chunk.next_offset;
      if (chunk.complete && !chunk.data) return;  // all of it is here
    } catch {
      // Not there yet (the job has not started) or a passing error: try again.
    }
    if (!stopped()) follower.timer = setTimeout(poll, 1000);
  };
  poll();
  followers.set(key, follower);
  return follower;
}

async function renderJob(params, who, navigate, refresh) {
  const id = params.get('id');
  const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
  const status = h('p', { class: 'action-status', role: 'status', 'aria-live': 'polite' });
  const act = (verb) => async () => {
    try {
      await api(`/v1/jobs/${job.id}/${verb}`, { method: 'POST' });
      status.textContent = `${verb}: done`;
      refresh();
    } catch (error) {
      status.textContent = `${verb}: ${error.message}`;
    }
  };
  const live = job.state === 'pending' || job.state === 'running';
  const task = Number(params.get('task')) || 0;
  const stream = params.get('stream') === 'err' ? 'err' : 'out';
  const history = [h('li', {}, `submitted ${when(job.submit_time)}`)];
  if (job.restarts) history.push(h('li', {}, `requeued ${job.restarts} time${job.restarts > 1 ? 's' : ''} (preempted or its node failed)`));
  if (job.start_time) history.push(h('li', {}, `started ${when(job.start_time)} (allocation epoch ${job.epoch})`));
  if (job.end_time) history.push(h('li', {}, `ended ${when(job.end_time)}: ${job.state}${job.exit_code !== null && job.exit_code !== undefined ? `, exit code ${job.exit_code}` : ''}${job.message ? ` (${job.message})` : ''}`));
  const facts = [
    ['state', stateBadge(job.state)], ['user', job.user], ['account', job.account],
    ['GPUs', `${job.gpus} (${job.tasks} task${job.tasks > 1 ? 's' : ''} × ${job.gpus_per_task})`],
    ['priority class', job.priority_class], ['time limit', span(job.time_limit)]];
  if (job.state === 'pending') {
    facts.push(['place in the queue', job.queue_position ? `${job.queue_position} of ${job.queue_length}` : 'not in line (held or waiting on a dependency)']);
    facts.push(['why it waits', h('span', { class: 'reason' }, h('strong', {}, job.reason.code), ' ', job.reason.message)]);
    facts.push(['expected start', job.expected_start ? when(job.expected_start) : 'not reserved yet']);
  }
  if (job.state === 'running') facts.push(['pool', job.pool]);
  const logSelect = h('form', { class: 'filters', onchange: (event) => {
    const form = new FormData(event.currentTarget);
    navigate(`#/jobs/${job.id}?task=${form.get('task')}&stream=${form.get('stream')}`);
  }, onsubmit: (event) => event.preventDefault() },
  h('label', {}, 'Task ', h('input', { name: 'task', type: 'number', min: 0, max: Math.max(0, job.tasks - 1), value: task })),
  h('label', {}, 'Stream ', h('select', { name: 'stream' },
    h('option', { value: 'out', selected: stream === 'out' }, 'stdout'), h('option', { value: 'err', selected: stream === 'err' }, 'stderr'))));
  const mine = who.role === 'operator' || job.user === who.user || who.role === 'tenant';
  return h('section', { 'aria-labelledby': 'job-title' },
    h('h1', { id: 'job-title' }, `Job ${job.id}`, job.name ? ` · ${job.name}` : ''),
    mine && live ? h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: act('cancel'), class: 'danger' }, 'Cancel'),
      job.state === 'pending' && !job.held ? h('button', { type: 'button', onclick: act('hold') }, 'Hold') : null,
      job.state === 'pending' && job.held ? h('button', { type: 'button', onclick: act('release') }, 'Release') : null) : null,
    status,
    h('dl', { class: 'facts' }, facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
    h('h2', {}, 'History'), h('ol', { class: 'history' }, history),
    table('Allocation', ['task', 'node', 'GPUs', 'CPUs', 'memory'],
      (job.allocation || []).map((a, i) => [i, a.node, a.gpus.join(', '), a.cpus || '—', a.memory ? `${formatNumber(a.memory / 2 ** 30)} GiB` : '—'])),
    h('h2', {}, 'Output'), logSelect, follow(job.id, task, stream).element,
    h('h2', {}, 'Spec'), h('pre', { class: 'spec', tabindex: 0 }, JSON.stringify(job.spec, null, 2)));
}

// ---- Simulation -------------------------------------------------------------------------------

async function renderSim(params) {
  const { reports, directory } = await api('/v1/reports');
  const name = params.get('report') || reports[0]?.name;
  const frame = h('iframe', { class: 'report', title: name ? `report ${name}` : 'no report', sandbox: '' });
  if (name) {
    const response = await fetch(`/v1/reports/${encodeURIComponent(name)}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('allot.token')}` } });
    frame.srcdoc = response.ok ? await response.text() : `could not load ${name}: ${response.status}`;
  }
  return h('section', { 'aria-labelledby': 'sim-title' },
    h('h1', { id: 'sim-title' }, 'Simulation'),
    reports.length === 0
      ? h('p', {}, directory
        ? `No reports yet in ${directory}. Write one there: allot sim --report ${directory}/NAME … or allot plan PLAN.yaml --report ${directory}/NAME.`
        : 'This server shows no reports: start it with --reports DIR, then write reports there with allot sim --report or allot plan --report.')
      : h('nav', { class: 'reports', 'aria-label': 'Reports' }, reports.map((r) => h('a', {
        href: `#/sim?report=${encodeURIComponent(r.name)}`, 'aria-current': r.name === name ? 'page' : null }, r.name, h('small', {}, ` ${when(r.modified)}`)))),
    name ? frame : null);
}

// A report does not change with the pool: it is drawn when opened, not at every change.
renderSim.live = false;

export const views = {
  pool: renderPool,
  queue: renderQueue,
  accounts: renderAccounts,
  jobs: renderJobs,
  job: renderJob,
  sim: renderSim,
};
