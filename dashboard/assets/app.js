// The Chard dashboard's page (chard/dashboard): a plain module, no framework, no build step.
// Every value from the server is put in the page with textContent (never as HTML), so a job's
// arguments, errors or names can hold any text. Views follow the URL's hash:
//   #/overview, #/jobs?state=&queue=&task=, #/search?q=, #/job?id=, #/workers, #/schedules
// each with ns=<namespace>. Live data comes from the server's event stream ("events").

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? "";
const CSRF = meta("chard-csrf");
const READ_ONLY = meta("chard-read-only") === "true";
const STATES = ["waiting", "retrying", "queued", "running", "failed", "succeeded"];
const main = document.getElementById("main");

let overview; // the latest overview (engines, counts, throughput)
let refreshTimer;

/** An element: h("td", { class: "num" }, "12", otherNode). Strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity))
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}
const svgNS = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
};
const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 1 }) : "-");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "-");
/** An error record as text: its stack (which starts with name and message), else name: message. */
const errorText = (e) => e.stack ?? `${e.name}: ${e.message}`;
const short = (value, max = 80) => {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
};

function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { view: path || "overview", params: new URLSearchParams(query) };
}
function namespace() {
  return route().params.get("ns") ?? document.getElementById("namespace").value ?? "";
}
function link(view, params = {}) {
  const p = new URLSearchParams({ ns: namespace(), ...params });
  return `#/${view}?${p}`;
}

async function api(path, params = {}) {
  const p = new URLSearchParams({ ns: namespace(), ...params });
  const res = await fetch(`api/${path}?${p}`, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(body.error ?? res.statusText);
  return body;
}

async function act(action, fields) {
  const res = await fetch("api/action", {
    method: "POST",
    headers: { "content-type": "application/json", "x-chard-csrf": CSRF },
    body: JSON.stringify({ ns: namespace(), action, ...fields }),
  });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  toast(res.ok ? `${action}: ${short(body.outcome, 60)}` : `${action} failed: ${body.error}`);
  await render();
}

function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.className = ""), 2500);
}

/** An action button, or nothing on a read-only dashboard. */
function button(label, action, fields, danger = false) {
  if (READ_ONLY) return undefined;
  return h(
    "button",
    {
      class: danger ? "danger" : undefined,
      "data-action": action,
      onclick: (e) => {
        e.preventDefault();
        if (danger && !confirm(`${label}?`)) return;
        void act(action, fields);
      },
    },
    label,
  );
}

function engineView() {
  return overview?.engines.find((e) => e.namespace === namespace()) ?? overview?.engines[0];
}

// ---- views ----

function chart(samples) {
  const w = 600;
  const hgt = 150;
  const box = svg("svg", { viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none", "data-testid": "chart" });
  const last = samples.slice(-300);
  const max = Math.max(1, ...last.flatMap((s) => [s.started, s.succeeded, s.failed]));
  for (const [key, color] of [
    ["started", "#7a3b8f"],
    ["succeeded", "#1f8a4c"],
    ["failed", "#c0392b"],
  ]) {
    const points = last.map((s, i) => `${(i / Math.max(1, 299)) * w},${hgt - (s[key] / max) * (hgt - 10) - 5}`);
    box.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
  }
  const now = last.at(-1) ?? { started: 0, succeeded: 0, failed: 0 };
  return h(
    "div",
    { class: "chart" },
    box,
    h(
      "div",
      { class: "legend" },
      h("span", { class: "started" }, `started ${fmt(now.started)}/s`),
      h("span", { class: "succeeded" }, `succeeded ${fmt(now.succeeded)}/s`),
      h("span", { class: "failed" }, `failed ${fmt(now.failed)}/s`),
      h("span", { class: "muted" }, `max ${fmt(max)}/s, last ${Math.round((last.length * 1000) / 1000)} samples`),
    ),
  );
}

function countsTable(kind, rows) {
  const cols = [...STATES, "succeededTotal", "failedTotal"];
  return h(
    "table",
    { "data-testid": `${kind}-table` },
    h("thead", {}, h("tr", {}, h("th", {}, kind), ...cols.map((c) => h("th", { class: "num" }, c)), h("th", {}, ""))),
    h(
      "tbody",
      {},
      rows.length === 0 ? h("tr", {}, h("td", { colspan: cols.length + 2, class: "muted" }, `no ${kind} yet`)) : [],
      rows.map((r) =>
        h(
          "tr",
          { "data-name": r.name },
          h(
            "td",
            {},
            h("a", { href: link("jobs", { [kind === "queue" ? "queue" : "task"]: r.name, state: "queued" }) }, r.name),
            r.paused ? h("span", { class: "paused" }, " paused") : undefined,
          ),
          cols.map((c) =>
            h(
              "td",
              { class: "num", "data-count": c },
              c === "succeededTotal" || c === "failedTotal"
                ? fmt(r[c])
                : h(
                    "a",
                    { href: link("jobs", { [kind === "queue" ? "queue" : "task"]: r.name, state: c }) },
                    fmt(r[c]),
                  ),
            ),
          ),
          h(
            "td",
            {},
            kind === "queue"
              ? [
                  r.paused
                    ? button("resume", "resumeQueue", { queue: r.name })
                    : button("pause", "pauseQueue", { queue: r.name }),
                  button("purge", "purge", { queue: r.name }, true),
                ]
              : r.paused
                ? button("resume", "resumeTask", { task: r.name })
                : button("pause", "pauseTask", { task: r.name }),
          ),
        ),
      ),
    ),
  );
}

function overviewView() {
  const e = engineView();
  if (!e) return h("p", { class: "muted" }, "loading…");
  const cards = [...STATES, "succeededTotal", "failedTotal"].map((k) =>
    h(
      "a",
      {
        class: `card ${k}`,
        href: STATES.includes(k) ? link("jobs", { state: k }) : undefined,
        "data-testid": `total-${k}`,
      },
      h("div", { class: "n" }, fmt(e.total[k])),
      h("div", { class: "l" }, k),
    ),
  );
  return h(
    "section",
    {},
    h("div", { class: "cards" }, cards),
    h("h2", {}, "Throughput (jobs per second, sampled by this dashboard; empty after its restart)"),
    chart(e.throughput),
    h("h2", {}, "Queues"),
    countsTable("queue", e.queues),
    h("h2", {}, "Tasks"),
    countsTable("task", e.tasks),
  );
}

function jobsTable(jobs) {
  return h(
    "table",
    { "data-testid": "jobs-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["id", "task", "queue", "state", "arguments", "due", "started", "finished", "retries"].map((c) =>
          h("th", {}, c),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      jobs.length === 0 ? h("tr", {}, h("td", { colspan: 9, class: "muted" }, "no jobs")) : [],
      jobs.map((j) =>
        h(
          "tr",
          { "data-job": j.id },
          h("td", {}, h("a", { class: "mono", href: link("job", { id: j.id }) }, j.id)),
          h("td", {}, j.task),
          h("td", {}, j.queue),
          h("td", {}, h("span", { class: `state ${j.state}` }, j.state)),
          h("td", { class: "mono" }, short(j.args)),
          h("td", {}, when(j.dueAt)),
          h("td", {}, when(j.startedAt)),
          h("td", {}, when(j.finishedAt)),
          h("td", { class: "num" }, `${j.retries}/${j.maxRetries}`),
        ),
      ),
    ),
  );
}

async function jobsView(params) {
  const state = params.get("state") ?? "failed";
  const filters = { state };
  for (const k of ["queue", "task", "cursor"]) if (params.get(k)) filters[k] = params.get(k);
  const page = await api("jobs", filters);
  const keep = {};
  for (const k of ["queue", "task"]) if (params.get(k)) keep[k] = params.get(k);
  return h(
    "section",
    {},
    h(
      "div",
      { class: "tabs", "data-testid": "state-tabs" },
      STATES.map((s) =>
        h("a", { href: link("jobs", { ...keep, state: s }), class: s === state ? "active" : undefined }, s),
      ),
    ),
    h(
      "div",
      { class: "filters muted" },
      keep.queue ? `queue ${keep.queue}` : "every queue",
      " · ",
      keep.task ? `task ${keep.task}` : "every task",
      keep.queue || keep.task ? h("a", { href: link("jobs", { state }) }, "clear") : undefined,
    ),
    jobsTable(page.jobs),
    h(
      "div",
      { class: "pager" },
      params.get("cursor") ? h("a", { href: link("jobs", { ...keep, state }) }, "first page") : undefined,
      " ",
      page.cursor
        ? h("a", { href: link("jobs", { ...keep, state, cursor: page.cursor }), "data-testid": "next" }, "next page")
        : undefined,
    ),
  );
}

async function searchView(params) {
  const q = params.get("q") ?? "";
  const found = await api("search", { q });
  return h("section", {}, h("h2", {}, "Search: ", q), jobsTable(found.jobs));
}

function json(value) {
  return h("pre", {}, value === undefined ? "-" : JSON.stringify(value, null, 2));
}

async function jobView(params) {
  const j = await api("job", { id: params.get("id") ?? "" });
  const actions = [
    j.state === "failed" ? button("retry", "retry", { id: j.id }) : undefined,
    j.state === "waiting" || j.state === "retrying" ? button("run now", "promote", { id: j.id }) : undefined,
    ["waiting", "retrying", "queued", "running"].includes(j.state)
      ? button("cancel", "cancel", { id: j.id }, true)
      : undefined,
    j.state !== "running" ? button("delete", "delete", { id: j.id }, true) : undefined,
  ];
  const o = j.options;
  return h(
    "section",
    { "data-testid": "job" },
    h(
      "h2",
      {},
      "Job ",
      h("span", { class: "mono" }, j.id),
      " ",
      h("span", { class: `state ${j.state}`, "data-testid": "job-state" }, j.state),
    ),
    h("p", {}, actions),
    h(
      "dl",
      {},
      h("dt", {}, "task"),
      h("dd", {}, j.task),
      h("dt", {}, "queue"),
      h("dd", {}, j.queue),
      h("dt", {}, "retries"),
      h("dd", {}, `${j.retries} of ${j.maxRetries}`),
      h("dt", {}, "priority"),
      h("dd", {}, String(o.priority)),
      h("dt", {}, "key"),
      h("dd", {}, o.key ?? "-"),
      h("dt", {}, "group"),
      h("dd", {}, o.group ?? "-"),
      h("dt", {}, "headers"),
      h("dd", { class: "mono" }, JSON.stringify(o.headers)),
      h("dt", {}, "timeout / expiry (ms)"),
      h("dd", {}, `${o.timeoutMs ?? "-"} / ${o.expiresInMs ?? "-"}`),
      h("dt", {}, "enqueued"),
      h("dd", {}, when(j.enqueuedAt)),
      h("dt", {}, "due"),
      h("dd", {}, when(j.dueAt)),
      h("dt", {}, "started"),
      h("dd", {}, when(j.startedAt)),
      h("dt", {}, "finished"),
      h("dd", {}, when(j.finishedAt)),
      h("dt", {}, "worker"),
      h("dd", { class: "mono" }, j.worker ?? "-"),
    ),
    h("h2", {}, "Arguments"),
    h("pre", { "data-testid": "job-args" }, JSON.stringify(j.args, null, 2)),
    j.error ? [h("h2", {}, "Error"), h("pre", { "data-testid": "job-error" }, errorText(j.error))] : undefined,
    j.attempts.length > 0
      ? [
          h("h2", {}, `Attempts that failed (${j.attempts.length})`),
          j.attempts.map((a) =>
            h(
              "div",
              { "data-attempt": a.attempt },
              h(
                "p",
                { class: "muted" },
                `attempt ${a.attempt} · ${when(a.startedAt)} → ${when(a.finishedAt)} · ${a.worker ?? ""}`,
              ),
              h("pre", {}, errorText(a.error)),
            ),
          ),
        ]
      : undefined,
    j.result !== undefined ? [h("h2", {}, "Result"), json(j.result)] : undefined,
    j.progress !== undefined ? [h("h2", {}, "Progress"), json(j.progress)] : undefined,
  );
}

async function workersView() {
  const { workers } = await api("workers");
  return h(
    "section",
    {},
    h("h2", {}, `Workers (${workers.length})`),
    h(
      "table",
      { "data-testid": "workers-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["id", "host", "pid", "queues", "concurrency", "running", "started", "last seen"].map((c) =>
            h("th", {}, c),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        workers.length === 0 ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no worker is up")) : [],
        workers.map((w) =>
          h(
            "tr",
            {},
            h("td", { class: "mono" }, w.id),
            h("td", {}, w.host),
            h("td", { class: "num" }, String(w.pid)),
            h("td", {}, w.queues.join(", ")),
            h("td", { class: "num" }, String(w.concurrency)),
            h("td", { class: "num" }, String(w.running.length)),
            h("td", {}, when(w.startedAt)),
            h("td", {}, when(w.lastSeen)),
          ),
        ),
      ),
    ),
  );
}

async function schedulesView() {
  const { schedules } = await api("schedules");
  return h(
    "section",
    {},
    h("h2", {}, `Schedules (${schedules.length})`),
    h(
      "table",
      { "data-testid": "schedules-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["name", "task", "when", "state", "next fire", "last run", "fires", ""].map((c) => h("th", {}, c)),
        ),
      ),
      h(
        "tbody",
        {},
        schedules.length === 0 ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "no schedules")) : [],
        schedules.map((s) =>
          h(
            "tr",
            {},
            h("td", {}, s.name),
            h("td", {}, s.task),
            h(
              "td",
              { class: "mono" },
              s.cron ?? (s.every ? `every ${s.every}` : "-"),
              s.timezone ? ` (${s.timezone})` : "",
            ),
            h("td", { class: s.state === "paused" ? "paused" : undefined }, s.state),
            h("td", {}, when(s.nextFireAt)),
            h("td", {}, s.lastRun ? `${when(s.lastRun.fireAt)} · ${s.lastRun.status}` : "-"),
            h("td", { class: "num" }, fmt(s.fires)),
            h(
              "td",
              {},
              s.state === "paused"
                ? button("resume", "resumeSchedule", { schedule: s.name })
                : s.state === "active"
                  ? button("pause", "pauseSchedule", { schedule: s.name })
                  : undefined,
            ),
          ),
        ),
      ),
    ),
  );
}

const VIEWS = {
  overview: async () => overviewView(),
  jobs: jobsView,
  search: searchView,
  job: jobView,
  workers: workersView,
  schedules: schedulesView,
};

let rendering = Promise.resolve();
/** Renders the view of the hash (one render at a time). */
function render() {
  rendering = rendering.then(async () => {
    const { view, params } = route();
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
    try {
      const content = await (VIEWS[view] ?? VIEWS.overview)(params);
      main.replaceChildren(content);
    } catch (e) {
      main.replaceChildren(h("p", { class: "muted", "data-testid": "error" }, `Could not load: ${e.message}`));
    }
  });
  return rendering;
}

function fillNamespaces() {
  const select = document.getElementById("namespace");
  const names = overview.engines.map((e) => e.namespace);
  if ([...select.options].map((o) => o.value).join("\n") === names.join("\n")) return;
  select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  const wanted = route().params.get("ns");
  if (wanted && names.includes(wanted)) select.value = wanted;
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource("events");
  source.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "live on";
  });
  source.addEventListener("error", () => {
    live.textContent = "reconnecting";
    live.className = "live off";
  });
  source.addEventListener("overview", (e) => {
    overview = JSON.parse(e.data);
    fillNamespaces();
    const { view } = route();
    if (view === "overview") void render();
    else if (!refreshTimer) {
      // Lists and jobs change too: read them again, at most every 2 s.
      refreshTimer = setTimeout(() => {
        refreshTimer = undefined;
        void render();
      }, 2000);
    }
  });
}

document.getElementById("namespace").addEventListener("change", (e) => {
  const { view, params } = route();
  params.set("ns", e.target.value);
  location.hash = `#/${view}?${params}`;
});
document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  location.hash = link("search", { q: document.getElementById("q").value.trim() });
});
window.addEventListener("hashchange", () => void render());

overview = await api("overview").catch(() => undefined);
if (overview) fillNamespaces();
await render();
listen();
