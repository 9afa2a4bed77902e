// data-flywheel pages: live refresh of server-rendered parts, job creation and cancellation through the
// JSON API. No framework, no build step. The server renders every part; this script only swaps them in.
"use strict";

const PAGE_HEADER = { "X-Flywheel-Page": "1" };

function toLogin() {
  const next = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(next));
}

async function fetchHtml(url) {
  const reply = await fetch(url, { credentials: "same-origin", headers: PAGE_HEADER });
  if (reply.status === 401) { toLogin(); return null; }
  if (!reply.ok) return null;
  return reply.text();
}

// FastAPI's errors: {"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}]}.
function errorText(status, body) {
  let detail = body && body.detail;
  if (Array.isArray(detail)) {
    detail = detail.map((e) => {
      const loc = (e.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
      return (loc ? loc + ": " : "") + e.msg;
    }).join("; ");
  }
  return "HTTP " + status + ": " + (detail || "request refused");
}

async function api(method, path, body) {
  const headers = Object.assign({}, PAGE_HEADER);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, {
    method, credentials: "same-origin", headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (reply.status === 401) { toLogin(); throw new Error("log in first"); }
  let data = null;
  try { data = await reply.json(); } catch (e) { data = null; }
  if (!reply.ok) throw new Error(errorText(reply.status, data));
  return data;
}

// KEY=VALUE lines (as `flywheel jobs create --set-split`): a value is JSON when it parses (20, 0.1, true,
// [1, 2]), else a string; dotted keys nest (lora.adapter_dim=8).
function parseAssignments(text, field) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(field + ": expected KEY=VALUE, got " + JSON.stringify(line));
    const keys = line.slice(0, eq).trim().split(".");
    const valueText = line.slice(eq + 1).trim();
    let value;
    try { value = JSON.parse(valueText); } catch (e) { value = valueText; }
    let target = out;
    for (const k of keys.slice(0, -1)) {
      if (typeof target[k] !== "object" || target[k] === null) target[k] = {};
      target = target[k];
    }
    target[keys[keys.length - 1]] = value;
  }
  return Object.keys(out).length ? out : null;
}

function jobBody(form) {
  const data = new FormData(form);
  const body = { workload_id: data.get("workload_id").trim(), client_id: data.get("client_id").trim() };
  const candidates = data.getAll("candidate");
  for (const name of (data.get("more_candidates") || "").split(",")) {
    if (name.trim()) candidates.push(name.trim());
  }
  if (candidates.length) body.candidates = candidates;
  for (const key of ["data_split_config", "training_config", "icl_config"]) {
    const value = parseAssignments(data.get(key) || "", key);
    if (value) body[key] = value;
  }
  return body;
}

// Parts with data-refresh are re-rendered by the server while something runs.
async function refresh(el) {
  const html = await fetchHtml(el.dataset.refresh);
  if (html === null) return el;
  const holder = document.createElement("div");
  holder.innerHTML = html;
  const fresh = holder.firstElementChild;
  el.replaceWith(fresh);
  return fresh;
}

function pollJobs() {
  if (!document.getElementById("jobs")) return;
  setInterval(() => {
    const table = document.getElementById("jobs");
    if (!document.hidden && table) refresh(table);
  }, 2000);
}

function pollJob() {
  let live = document.getElementById("live");
  if (!live || live.dataset.terminal === "1") return;
  const timer = setInterval(async () => {
    if (document.hidden) return;
    live = await refresh(live);
    if (live.dataset.terminal === "1") { clearInterval(timer); location.reload(); }
  }, 1500);
}

function createJob() {
  const form = document.getElementById("create-job");
  if (!form) return;
  const out = document.getElementById("create-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.className = ""; out.textContent = "creating...";
    try {
      const created = await api("POST", "/api/jobs", jobBody(form));
      out.innerHTML = "";
      const link = document.createElement("a");
      link.href = "/jobs/" + created.id; link.textContent = created.id;
      out.append("Job ", link, " created (" + created.status + ").");
      const table = document.getElementById("jobs");
      if (table) refresh(table);
    } catch (err) {
      out.className = "error"; out.textContent = err.message;
    }
  });
}

function cancelButtons() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-cancel]");
    if (!button) return;
    button.disabled = true;
    try {
      const reply = await api("POST", "/api/jobs/" + button.dataset.cancel + "/cancel");
      button.textContent = reply.status;
      const target = document.getElementById("jobs") || document.getElementById("live");
      if (target) refresh(target);
    } catch (err) {
      button.disabled = false; alert(err.message);
    }
  });
}

function sampleBrowser() {
  const section = document.getElementById("samples");
  if (!section) return;
  const jobId = section.dataset.jobId;
  async function show(params) {
    const html = await fetchHtml("/jobs/" + jobId + "/partials/samples?" + params.toString());
    if (html === null) return;
    const holder = document.createElement("div");
    holder.innerHTML = html;
    document.getElementById("samples").replaceWith(holder.firstElementChild);
    history.replaceState(null, "", "?" + params.toString() + "#samples");
  }
  document.addEventListener("change", (event) => {
    const form = event.target.closest("#sample-filter");
    if (form) show(new URLSearchParams(new FormData(form)));
  });
  document.addEventListener("submit", (event) => {
    if (event.target.id !== "sample-filter") return;
    event.preventDefault();
    show(new URLSearchParams(new FormData(event.target)));
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-samples-page]");
    if (!link) return;
    event.preventDefault();
    show(new URLSearchParams(link.getAttribute("href").split("#")[0].slice(1)));
  });
}

function text(tag, value) {
  const cell = document.createElement(tag);
  cell.textContent = value === null || value === undefined ? "-" : String(value);
  return cell;
}

// The job page's promotion card: the workload's route and live agreement, promote and roll back.
function promotion() {
  const card = document.getElementById("promotion");
  if (!card) return;
  const workload = encodeURIComponent(card.dataset.workload);
  const client = encodeURIComponent(card.dataset.client);
  const result = document.getElementById("promote-result");
  async function show() {
    const route = await api("GET", "/api/workloads/" + workload + "/route?client_id=" + client);
    const now = route.current[0];
    const line = document.getElementById("route-now");
    if (!now || !now.active) {
      line.textContent = "All traffic goes to the big model" + (now ? " (rolled back: " + now.reason + ")" : "") + ".";
    } else {
      const share = now.mode === "canary" ? " " + Math.round(now.canary_share * 100) + "%" : "";
      line.textContent = now.mode + share + " to " + now.candidate + " (" + now.eval_type + ") as " + now.model +
        " at " + now.base_url + (now.override ? " — override: " + now.reason : "");
    }
    const agreement = await api("GET", "/api/workloads/" + workload + "/agreement?client_id=" + client);
    const body = document.querySelector("#agreement tbody");
    body.replaceChildren(...agreement.data.map((d) => {
      const row = document.createElement("tr");
      row.append(text("td", d.day), text("td", d.model), text("td", d.compared), text("td", d.agreed),
        text("td", d.rate === null ? null : d.rate.toFixed(3)), text("td", d.answered_by_candidate),
        text("td", d.candidate_errors));
      return row;
    }));
    if (!agreement.data.length) {
      const cell = text("td", "No live traffic compared yet: shadow or canary routing measures it.");
      cell.colSpan = 7;
      const row = document.createElement("tr");
      row.append(cell);
      body.append(row);
    }
  }
  document.getElementById("promote-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = { mode: form.get("mode"), override: form.get("override") === "on", reason: form.get("reason") || "" };
    if (body.mode === "canary") body.canary_share = Number(form.get("canary_share"));
    for (const key of ["candidate", "base_url", "model"]) if (form.get(key)) body[key] = form.get(key);
    try {
      const reply = await api("POST", "/api/jobs/" + card.dataset.jobId + "/promote", body);
      result.className = "ok"; result.textContent = "promoted: " + reply.event.mode;
    } catch (err) {
      result.className = "error"; result.textContent = err.message;
    }
    show();
  });
  card.querySelector("[data-rollback]").addEventListener("click", async () => {
    try {
      await api("POST", "/api/workloads/" + workload + "/rollback", { client_id: card.dataset.client, reason: "from the job page" });
      result.className = "ok"; result.textContent = "rolled back";
    } catch (err) {
      result.className = "error"; result.textContent = err.message;
    }
    show();
  });
  show().catch((err) => { document.getElementById("route-now").textContent = err.message; });
}

pollJobs();
pollJob();
createJob();
cancelButtons();
sampleBrowser();
promotion();
