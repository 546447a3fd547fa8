// Operator console: vanilla JS, no build step. Data comes from /v1/ops/... with the operator's
// token; every value is put on the page as text (textContent), never parsed as HTML.
"use strict";

const TOKEN_KEY = "saga.console.token";

function takeToken() {
  // The token arrives in the fragment, which browsers never send to a server; keep it for this
  // tab only and drop it from the address bar (and so from history and screenshots).
  const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.reason || `${response.status} ${response.statusText}`);
  }
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = cell instanceof Node ? wrap(cell) : el("td", cell);
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
  return tr;
}

function wrap(node) {
  if (node.tagName === "TD") return node;
  const td = document.createElement("td");
  td.appendChild(node);
  return td;
}

function body(id) {
  const tbody = document.querySelector(`#${id} tbody`);
  tbody.replaceChildren();
  return tbody;
}

function flash(text, ok) {
  const node = document.getElementById("flash");
  node.textContent = text;
  node.className = ok ? "ok" : "error";
}

function utc(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "";
}

function link(checkoutId) {
  const a = el("a", checkoutId);
  a.href = "#";
  a.dataset.checkout = checkoutId;
  a.addEventListener("click", (event) => {
    event.preventDefault();
    showTimeline(checkoutId);
  });
  return a;
}

async function search(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams();
  const q = document.getElementById("q").value.trim();
  const status = document.getElementById("status").value;
  if (q) params.set("q", q);
  if (status) params.set("status", status);
  try {
    const { checkouts } = await api(`/v1/ops/checkouts?${params}`);
    const tbody = body("checkouts");
    for (const c of checkouts) {
      row(tbody, [link(c.checkout_id), c.customer_email, c.status, `${c.total ?? ""} ${c.currency}`,
        c.started_at ? c.started_at.replace("T", " ").slice(0, 19) : "", c.step || "",
        el("td", c.why || "", "why")]);
    }
    flash(`${checkouts.length} checkout(s)`, true);
    if (checkouts.length === 1) await showTimeline(checkouts[0].checkout_id);
  } catch (e) {
    flash(`search failed: ${e.message}`);
  }
}

async function showTimeline(checkoutId) {
  try {
    const t = await api(`/v1/ops/checkouts/${encodeURIComponent(checkoutId)}/timeline`);
    document.getElementById("timeline-section").hidden = false;
    document.getElementById("timeline-id").textContent = t.checkout_id;
    document.getElementById("timeline-status").textContent = t.status;
    const lanes = document.getElementById("lanes");
    lanes.replaceChildren();
    const span = Math.max(t.duration_ms, 1);
    for (const lane of t.lanes) {
      const line = el("div", null, `lane ${lane.kind}`);
      line.dataset.step = lane.step;
      line.appendChild(el("span", lane.kind === "compensation" ? `↩ ${lane.step}` : lane.step, "name"));
      const track = el("div", null, "track");
      for (const a of lane.attempts) {
        const end = a.end_ms ?? t.duration_ms;
        const cls = ["succeeded", "failed"].includes(a.outcome) ? a.outcome
          : a.end_ms === null ? "open" : "other";
        const bar = el("div", `#${a.attempt} ${a.outcome} ${end - a.start_ms} ms`, `bar ${cls}`);
        bar.style.left = `${(100 * a.start_ms) / span}%`;
        bar.style.width = `${Math.max((100 * (end - a.start_ms)) / span, 0.5)}%`;
        bar.title = `attempt ${a.attempt}: ${a.outcome}, ${end - a.start_ms} ms` +
          (a.reason ? ` — ${a.reason}` : "");
        track.appendChild(bar);
      }
      line.appendChild(track);
      lanes.appendChild(line);
    }
    const tbody = body("events");
    for (const e of t.events) {
      row(tbody, [e.at_ms, e.event, e.step, e.attempt ?? "", el("td", e.detail, "why")]);
    }
  } catch (e) {
    flash(`timeline of ${checkoutId}: ${e.message}`);
  }
}

async function loadParked() {
  const { checkouts } = await api("/v1/ops/checkouts?status=NEEDS_ATTENTION&limit=100");
  const tbody = body("parked");
  for (const c of checkouts) {
    const button = el("button", "Retry");
    button.type = "button";
    button.dataset.retry = c.checkout_id;
    button.addEventListener("click", () => act(
      `/v1/ops/checkouts/${encodeURIComponent(c.checkout_id)}/retry`,
      `what was fixed for ${c.checkout_id}?`, `retry sent for ${c.checkout_id}`));
    row(tbody, [link(c.checkout_id), c.step || "", el("td", c.why || "", "why"), button]);
  }
}

async function loadDeadLetters() {
  const { dead_letters: letters } = await api("/v1/ops/dlq");
  const tbody = body("dlq");
  for (const d of letters) {
    const last = d.redriven[d.redriven.length - 1];
    const button = el("button", last ? "Re-driven" : "Re-drive");
    button.type = "button";
    button.dataset.redrive = d.id;
    button.disabled = Boolean(last);
    button.addEventListener("click", () => act(
      `/v1/ops/dlq/${encodeURIComponent(d.id)}/redrive`,
      `why re-drive ${d.id}?`, `re-drove ${d.id}`));
    row(tbody, [el("td", d.id, "id"), d.key || "", d.type || "?",
      `${d.topic}[${d.partition}]@${d.offset}`, el("td", d.error, "why"),
      last ? `${last.actor} ${utc(last.at_ms)}` : "", button]);
  }
}

async function loadStatus() {
  const s = await api("/v1/ops/status");
  let tbody = body("lag");
  for (const l of s.lag) row(tbody, [l.group, l.topic, el("td", l.lag, l.lag ? "lag" : "")]);
  tbody = body("dlq-counts");
  for (const d of s.dlq) row(tbody, [d.topic, d.records, d.redriven]);
  tbody = body("breakers");
  for (const b of s.breakers) {
    row(tbody, [b.breaker, el("td", b.state, `state-${b.state}`), utc(b.since_ms), b.instance]);
  }
  // Absent when the API's Operations has no analytics (e.g. an older deployment).
  const analytics = s.analytics || { minutely: [], alerts: [] };
  tbody = body("analytics-minutes");
  for (const w of analytics.minutely) {
    row(tbody, [utc(w.window_start_ms), w.checkouts_started ?? "", w.checkouts_completed ?? "",
      w.checkouts_failed ?? "", w.checkouts_cancelled ?? "", w.conversion_rate ?? ""]);
  }
  tbody = body("analytics-alerts");
  for (const a of analytics.alerts) {
    row(tbody, [a.alert, a.dimension, utc(a.window_start_ms), a.value, a.threshold]);
  }
}

async function act(path, question, done) {
  const reason = prompt(question, "fixed; via console");
  if (!reason) return;
  try {
    const result = await api(path, { method: "POST", body: JSON.stringify({ reason }) });
    flash(`${done}${result.message_id ? ` (message ${result.message_id})` : ""}`, true);
  } catch (e) {
    flash(e.message);
  }
  await refresh();
}

async function refresh() {
  const results = await Promise.allSettled([loadParked(), loadDeadLetters(), loadStatus()]);
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.length) flash(`could not load: ${failed.map((r) => r.reason.message).join("; ")}`);
}

function start() {
  if (!token) {
    document.getElementById("login").hidden = false;
    return;
  }
  document.getElementById("app").hidden = false;
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    document.getElementById("who").textContent = `${claims.sub} (${claims.role})`;
  } catch (e) {
    document.getElementById("who").textContent = "token unreadable";
  }
  document.getElementById("search").addEventListener("submit", search);
  document.getElementById("refresh").addEventListener("click", refresh);
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
