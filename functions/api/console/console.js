"use strict";
// The stepgraph console: graphs, runs and a live run view over this API (same origin, key in x-api-key).
// No framework and no build step: views are plain functions that fill <main id="view">.
(() => {
  const KEY = "stepgraph.apiKey";
  const POLL_MS = 1000;
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"]);
  const RUN_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"];
  const NODE_STATUSES = ["PENDING", "RUNNING", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED"];
  // In AWS the page is /<stage>/console and the API is /<stage>/...; locally both sit at the root.
  const BASE = location.pathname.replace(/\/console\/?$/, "");
  const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
  const IN_AWS = !LOCAL_HOSTS.has(location.hostname);
  // The stack's WebSocket API for live run events, when it has one (GET /console puts it here).
  const WS_URL = (document.querySelector('meta[name="stepgraph-ws"]') || {}).content || "";
  const NODE_EVENT_STATUS = { NODE_STARTED: "RUNNING", NODE_WAITING: "WAITING", NODE_SUCCEEDED: "SUCCEEDED",
    NODE_FAILED: "FAILED", NODE_SKIPPED: "SKIPPED", NODE_CANCELLED: "CANCELLED" };
  const view = document.getElementById("view");
  let generation = 0; // bumped on every navigation: loops of an older view stop

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const json = (value) => JSON.stringify(value, null, 2);
  const pre = (value) => el("pre", { class: "json" }, typeof value === "string" ? value : json(value));
  const badge = (status) => el("span", { class: "badge", "data-status": status }, status);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [term, value] of pairs) {
      if (value === undefined || value === null || value === "") continue;
      dl.append(el("dt", {}, term), el("dd", {}, value));
    }
    return dl;
  }

  function errorBox(error) {
    const box = el("div", { class: "error", role: "alert" }, error.message || String(error));
    for (const detail of error.details || []) {
      const where = detail.node ? `node ${detail.node}` : detail.edge ? `edge ${detail.edge}` : detail.loc;
      box.append(el("div", {}, `• ${where ? where + ": " : ""}${detail.message}`));
    }
    return box;
  }

  // ------------------------------------------------------------------ the API and its key

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || [];
    }
  }

  const getKey = () => sessionStorage.getItem(KEY);

  async function api(path, { method = "GET", body, text = false, key = getKey() } = {}) {
    if (!key) {
      askForKey();
      throw new ApiError(0, "no_key", "Enter the API key to continue.");
    }
    const headers = { "x-api-key": key, accept: text ? "*/*" : "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(BASE + path, {
        method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new ApiError(0, "network", `The API did not answer (${cause.message}). Is the stack running?`);
    }
    const raw = await response.text();
    let data = null;
    try { data = raw && !text ? JSON.parse(raw) : null; } catch { data = null; }
    if (response.status === 401 || response.status === 403) {
      // 401 from the API function (local), 403 {"message": "Forbidden"} from API Gateway (AWS).
      const said = (data && data.error && data.error.message) || (data && data.message) || response.statusText;
      throw new ApiError(response.status, "unauthorized",
        `The API refused the key (HTTP ${response.status}: ${said}). Check the key and enter it again.`);
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      const message = error.message || (data && data.message) || `HTTP ${response.status}`;
      throw new ApiError(response.status, error.code || "error", message, error.details);
    }
    return text ? raw : data;
  }

  // Failures of a view's requests: a refused key sends the user back to the key form, others show in place.
  function failed(error, where) {
    if (error.code === "unauthorized") {
      sessionStorage.removeItem(KEY);
      askForKey(error.message);
      return;
    }
    if (error.code === "no_key") return;
    (where || view).append(errorBox(error));
  }

  const keyPanel = document.getElementById("key-panel");
  const keyMessage = document.getElementById("key-message");
  const keyInput = document.getElementById("key-input");

  function askForKey(message) {
    generation += 1;
    view.replaceChildren();
    keyPanel.hidden = false;
    keyMessage.hidden = !message;
    keyMessage.textContent = message || "";
    showKeyState();
    keyInput.focus();
  }

  function showKeyState() {
    const key = getKey();
    document.getElementById("key-state").textContent = key ? `key …${key.slice(-4)}` : "no key";
    document.getElementById("forget-key").hidden = !key;
  }

  document.getElementById("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    const button = document.getElementById("key-submit");
    button.disabled = true;
    try {
      await api("/graphs?limit=1", { key }); // the key is kept only once the API accepts it
      sessionStorage.setItem(KEY, key);
      keyInput.value = "";
      keyPanel.hidden = true;
      showKeyState();
      route();
    } catch (error) {
      keyMessage.hidden = false;
      keyMessage.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    askForKey();
  });

  // ------------------------------------------------------------------ diagrams

  async function loadDiagram(graphId, version) {
    const query = version ? `&version=${version}` : "";
    const text = await api(`/graphs/${encodeURIComponent(graphId)}/diagram?format=svg${query}`, { text: true });
    const parsed = new DOMParser().parseFromString(text, "image/svg+xml");
    const svg = parsed.documentElement;
    if (svg.nodeName !== "svg") throw new ApiError(0, "bad_svg", "The diagram could not be read.");
    return document.importNode(svg, true);
  }

  function colourNodes(svg, nodes) {
    for (const group of svg.querySelectorAll("g.node[data-node]")) {
      const node = nodes[group.getAttribute("data-node")];
      group.setAttribute("data-status", node ? node.status : "PENDING");
    }
  }

  // ------------------------------------------------------------------ graphs

  const EXAMPLE_SPEC = {
    name: "hello",
    nodes: [
      { id: "greet", tool: "util.echo", params: { message: "{{input.name}}" } },
      { id: "wait", tool: "util.sleep", params: { seconds: 1 } },
    ],
    edges: [{ from: "greet", to: "wait" }],
  };

  async function graphsView(gen) {
    const list = el("tbody");
    const more = el("button", { class: "secondary", hidden: true, type: "button" }, "More");
    const spec = el("textarea", { id: "graph-spec", spellcheck: "false", rows: 12 }, json(EXAMPLE_SPEC));
    const outcome = el("div");
    const create = el("button", { id: "create-graph", type: "button" }, "Create graph");
    create.addEventListener("click", async () => {
      outcome.replaceChildren();
      let parsed;
      try { parsed = JSON.parse(spec.value); } catch (error) {
        outcome.append(errorBox({ message: `The spec is not JSON: ${error.message}` }));
        return;
      }
      create.disabled = true;
      try {
        const created = await api("/graphs", { method: "POST", body: parsed });
        location.hash = `#/graphs/${created.graph_id}`;
      } catch (error) {
        failed(error, outcome);
      } finally {
        create.disabled = false;
      }
    });
    view.replaceChildren(
      el("section", { class: "panel" },
        el("h2", {}, "Graphs"),
        el("table", {}, el("thead", {}, el("tr", {}, ["Name", "Graph", "Version", "Updated"].map((h) => el("th", {}, h)))), list),
        more),
      el("details", { class: "panel" },
        el("summary", {}, "Create a graph from a spec (JSON)"),
        spec, el("div", { class: "row" }, create), outcome),
    );
    let cursor = null;
    async function page() {
      const data = await api(`/graphs?limit=50${cursor ? `&next=${encodeURIComponent(cursor)}` : ""}`);
      if (gen !== generation) return;
      for (const graph of data.graphs) {
        const href = `#/graphs/${graph.graph_id}`;
        list.append(el("tr", { class: "clickable", "data-graph": graph.graph_id, on: { click: () => { location.hash = href; } } },
          el("td", {}, el("a", { href }, graph.name)), el("td", { class: "mono" }, graph.graph_id),
          el("td", {}, `v${graph.latest_version}`), el("td", {}, when(graph.updated_at))));
      }
      if (!data.graphs.length && !cursor) list.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No graphs yet.")));
      cursor = data.next;
      more.hidden = !cursor;
    }
    more.addEventListener("click", () => page().catch((error) => failed(error)));
    await page();
  }

  async function lastInput(graphId) {
    const runs = await api(`/runs?graph_id=${encodeURIComponent(graphId)}&limit=1`);
    if (!runs.runs.length) return null;
    const run = await api(`/runs/${encodeURIComponent(runs.runs[0].run_id)}`);
    return run.input === undefined ? null : run.input;
  }

  // The plan (DESIGN "The plan of a graph"): ranges are {min, max}; known fields get their words and units.
  const PLAN_FIELDS = {
    estimated_cost_usd: ["cost of a run", (v) => `$${v >= 1 ? v.toFixed(2) : Number(v).toPrecision(2)}`],
    transitions: ["state transitions", String],
    lambda_invocations: ["Lambda invocations", String],
    history_events_max: ["history events, at most", (v) => `${v} (AWS's limit: 25,000)`],
    states: ["states", String],
    definition_bytes: ["definition size", (v) => `${v} bytes (AWS's limit: 1,048,576)`],
  };

  function planSection(plan) {
    if (!plan) return el("p", { class: "muted", id: "plan" }, "No plan: this API does not estimate graphs yet.");
    const rows = [];
    const notes = [];
    for (const [name, value] of Object.entries(plan)) {
      const [label, unit] = PLAN_FIELDS[name] || [name.replaceAll("_", " "), String];
      if (Array.isArray(value)) notes.push(el("details", {}, el("summary", {}, label), el("ul", {}, value.map((v) => el("li", {}, String(v))))));
      else if (value && typeof value === "object" && "min" in value && "max" in value) {
        rows.push([label, value.min === value.max ? unit(value.min) : `${unit(value.min)} to ${unit(value.max)}`]);
      } else if (value !== null && typeof value === "object") notes.push(el("details", {}, el("summary", {}, label), pre(value)));
      else rows.push([label, unit(value)]);
    }
    return el("div", { id: "plan" }, facts(rows), notes);
  }

  async function graphView(gen, graphId) {
    const graph = await api(`/graphs/${encodeURIComponent(graphId)}`);
    if (gen !== generation) return;
    const picture = el("div", { class: "diagram", id: "diagram" }, el("span", { class: "muted" }, "drawing…"));
    const input = el("textarea", { id: "run-input", spellcheck: "false", rows: 8 }, "{}");
    const inputNote = el("span", { class: "muted" }, "");
    const started = el("div");
    const start = el("button", { id: "start-run", type: "button" }, "Start run");
    input.addEventListener("input", () => {
      try { JSON.parse(input.value); input.classList.remove("invalid"); } catch { input.classList.add("invalid"); }
    });
    start.addEventListener("click", async () => {
      started.replaceChildren();
      let parsed;
      try { parsed = JSON.parse(input.value); } catch (error) {
        started.append(errorBox({ message: `The input is not JSON: ${error.message}` }));
        return;
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        started.append(errorBox({ message: "The input must be a JSON object." }));
        return;
      }
      start.disabled = true;
      try {
        const run = await api(`/graphs/${encodeURIComponent(graphId)}/runs`, { method: "POST", body: { input: parsed } });
        location.hash = `#/runs/${run.run_id}`;
      } catch (error) {
        failed(error, started);
      } finally {
        start.disabled = false;
      }
    });

    const definition = el("div", {}, el("span", { class: "muted" }, "loading…"));
    const versionPick = el("select", { id: "definition-version" },
      graph.versions.slice().reverse().map((v) => el("option", { value: v.version }, `version ${v.version}`)));
    async function showDefinition() {
      try {
        const found = await api(`/graphs/${encodeURIComponent(graphId)}/definition?version=${versionPick.value}`);
        definition.replaceChildren(pre(found.definition));
      } catch (error) {
        definition.replaceChildren();
        failed(error, definition);
      }
    }
    versionPick.addEventListener("change", showDefinition);

    const versions = el("tbody", {}, graph.versions.slice().reverse().map((v) => el("tr", {},
      el("td", {}, `v${v.version}`), el("td", {}, when(v.created_at)),
      el("td", { class: "mono", title: v.definition_sha256 }, v.definition_sha256.slice(0, 12)),
      el("td", { class: "mono" }, IN_AWS ? el("a", { href: v.console_url, target: "_blank", rel: "noreferrer" }, v.state_machine_arn.split(":").pop()) : v.state_machine_arn.split(":").pop()))));

    view.replaceChildren(
      el("section", { class: "panel" },
        el("h2", {}, graph.name),
        graph.description ? el("p", {}, graph.description) : "",
        facts([["graph", el("code", {}, graph.graph_id)], ["latest version", `v${graph.latest_version}`],
          ["updated", when(graph.updated_at)], ["runs", el("a", { href: `#/runs?graph=${graph.graph_id}` }, "runs of this graph")]])),
      el("div", { class: "grid" },
        el("section", { class: "panel" }, el("h3", {}, "Diagram"), picture),
        el("section", { class: "panel" },
          el("h3", {}, "Start a run"),
          el("label", { for: "run-input" }, "Input (JSON object) "), inputNote, input,
          el("div", { class: "row" }, start), started,
          el("h3", {}, "Plan"), planSection(graph.plan))),
      el("section", { class: "panel" }, el("h3", {}, "Versions"),
        el("table", {}, el("thead", {}, el("tr", {}, ["Version", "Created", "Definition SHA-256", "State machine"].map((h) => el("th", {}, h)))), versions)),
      el("section", { class: "panel" }, el("h3", {}, "Compiled definition (Amazon States Language) "), versionPick, definition),
      el("details", { class: "panel" }, el("summary", {}, "Spec"), pre(graph.spec)),
    );
    const [svg, last] = await Promise.allSettled([loadDiagram(graphId), lastInput(graphId), showDefinition()]);
    if (gen !== generation) return;
    if (svg.status === "fulfilled") picture.replaceChildren(svg.value);
    else { picture.replaceChildren(); failed(svg.reason, picture); }
    if (last.status === "fulfilled" && last.value !== null) {
      input.value = json(last.value);
      inputNote.textContent = "(the last run's input)";
    }
  }

  // ------------------------------------------------------------------ runs

  function progressBar(progress) {
    const bar = el("span");
    bar.style.width = `${progress.percent}%`; // CSSOM, not a style attribute: the CSP allows no inline styles
    return el("span", { title: `${progress.done} of ${progress.total} nodes` },
      el("span", { class: "progress" }, bar), ` ${progress.done}/${progress.total}`);
  }

  async function runsView(gen, params) {
    const graphFilter = el("select", { id: "filter-graph" }, el("option", { value: "" }, "all graphs"));
    const statusFilter = el("select", { id: "filter-status" }, el("option", { value: "" }, "any status"),
      RUN_STATUSES.map((s) => el("option", { value: s }, s.toLowerCase().replace("_", " "))));
    const rows = el("tbody");
    const more = el("button", { class: "secondary", hidden: true, type: "button" }, "More");
    const refresh = el("button", { class: "secondary", type: "button" }, "Refresh");
    const names = {};
    view.replaceChildren(el("section", { class: "panel" },
      el("h2", {}, "Runs"),
      el("div", { class: "row" }, el("label", {}, "Graph ", graphFilter), el("label", {}, "Status ", statusFilter), refresh),
      el("table", { id: "runs" }, el("thead", {}, el("tr", {}, ["Run", "Graph", "Version", "Status", "Started", "Progress"].map((h) => el("th", {}, h)))), rows),
      more));
    const navigate = () => {
      const query = new URLSearchParams();
      if (graphFilter.value) query.set("graph", graphFilter.value);
      if (statusFilter.value) query.set("status", statusFilter.value);
      location.hash = `#/runs${query.toString() ? "?" + query : ""}`;
    };
    graphFilter.addEventListener("change", navigate);
    statusFilter.addEventListener("change", navigate);
    refresh.addEventListener("click", () => route());

    const graphs = await api("/graphs?limit=100");
    if (gen !== generation) return;
    for (const graph of graphs.graphs) {
      names[graph.graph_id] = graph.name;
      graphFilter.append(el("option", { value: graph.graph_id }, `${graph.name} (${graph.graph_id})`));
    }
    if (params.get("graph") && !names[params.get("graph")]) {
      graphFilter.append(el("option", { value: params.get("graph") }, params.get("graph")));
    }
    graphFilter.value = params.get("graph") || "";
    statusFilter.value = params.get("status") || "";

    let cursor = null;
    async function page() {
      const query = new URLSearchParams({ limit: "50" });
      if (graphFilter.value) query.set("graph_id", graphFilter.value);
      if (statusFilter.value) query.set("status", statusFilter.value);
      if (cursor) query.set("next", cursor);
      const data = await api(`/runs?${query}`);
      if (gen !== generation) return;
      for (const run of data.runs) {
        const href = `#/runs/${run.run_id}`;
        rows.append(el("tr", { class: "clickable", "data-run": run.run_id, on: { click: () => { location.hash = href; } } },
          el("td", { class: "mono" }, el("a", { href }, run.run_id)),
          el("td", {}, names[run.graph_id] || run.graph_id), el("td", {}, `v${run.version}`),
          el("td", {}, badge(run.status)), el("td", {}, when(run.started_at)), el("td", {}, progressBar(run.progress))));
      }
      if (!data.runs.length && !cursor) rows.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No runs match.")));
      cursor = data.next;
      more.hidden = !cursor;
    }
    more.addEventListener("click", () => page().catch((error) => failed(error)));
    await page();
  }

  function nodeDetail(id, node) {
    if (!node) return el("p", { class: "muted" }, "Click a node of the diagram to see its attempts, iterations, timings, output and error.");
    const items = node.items_total !== undefined && node.items_total !== null ? `${node.items_done ?? 0} of ${node.items_total}` : null;
    return el("div", { "data-node": id },
      el("h3", {}, `Node ${id} `, badge(node.status)),
      facts([["tool", node.tool], ["attempts", String(node.attempts)], ["iterations", String(node.iterations)],
        ["items", items], ["cached", node.cached && node.cached_from ? `output reused from run ${node.cached_from.run_id}` : null],
        ["started", when(node.started_at)], ["finished", when(node.finished_at)],
        ["duration", node.duration_ms !== null && node.duration_ms !== undefined ? `${node.duration_ms} ms` : null]]),
      node.error ? el("div", { class: "error node-error", role: "alert" }, el("strong", {}, node.error.code), `: ${node.error.message}`) : null,
      node.output !== null && node.output !== undefined ? [el("h3", {}, "Output"), pre(node.output)] : null);
  }

  async function runView(gen, runId) {
    let run = await api(`/runs/${encodeURIComponent(runId)}`);
    if (gen !== generation) return;
    let selected = null;
    let svg = null;
    let graphName = run.graph_id;
    const header = el("div");
    const detail = el("section", { class: "panel", id: "node-detail" });
    const picture = el("div", { class: "diagram", id: "diagram" }, el("span", { class: "muted" }, "drawing…"));
    const nodeRows = el("tbody");
    const events = el("tbody");
    const eventsNote = el("span", { class: "muted" });
    const state = el("div");
    const actions = el("div", { class: "row" });
    const actionOutcome = el("div");
    const waitingBox = el("div", { id: "waiting" });
    let graphSpec = null; // the graph's spec once loaded: a human.input node's answer form comes from its schema
    let shownWaits = "";

    // A person's step: approve or reject (with a comment), or a form built from the node's JSON Schema.
    function schemaOf(nodeId) {
      const node = graphSpec && (graphSpec.nodes || []).find((n) => n.id === nodeId);
      return node && node.params && typeof node.params.schema === "object" ? node.params.schema : null;
    }

    function answerForm(wait) {
      const outcome = el("div", { class: "answer-outcome" });
      const path = `/runs/${encodeURIComponent(runId)}/nodes/${encodeURIComponent(wait.node)}/respond`;
      async function send(body, button) {
        outcome.replaceChildren();
        button.disabled = true;
        try {
          await api(path, { method: "POST", body });
          shownWaits = "";
          reload().catch(() => {});
        } catch (error) {
          button.disabled = false;
          failed(error, outcome);
        }
      }
      if (wait.tool === "human.approval") {
        const comment = el("input", { type: "text", class: "comment", placeholder: "comment (optional)", "aria-label": "comment" });
        const body = (approved) => (comment.value ? { approved, comment: comment.value } : { approved });
        const approve = el("button", { type: "button", class: "approve", on: { click: () => send(body(true), approve) } }, "Approve");
        const reject = el("button", { type: "button", class: "danger reject", on: { click: () => send(body(false), reject) } }, "Reject");
        return [el("div", { class: "row" }, comment, approve, reject), outcome];
      }
      const schema = schemaOf(wait.node) || {};
      const simple = ["string", "number", "integer", "boolean"];
      const props = schema.type === "object" && schema.properties ? Object.entries(schema.properties) : [];
      const fields = [];
      let editor = null;
      if (props.length && props.every(([, p]) => p && simple.includes(p.type))) {
        for (const [name, p] of props) {
          const input = p.type === "boolean" ? el("input", { type: "checkbox", name })
            : Array.isArray(p.enum) ? el("select", { name }, p.enum.map((v) => el("option", { value: String(v) }, String(v))))
              : el("input", { type: p.type === "string" ? "text" : "number", name, step: p.type === "integer" ? "1" : "any" });
          fields.push([name, p, input]);
        }
      } else {
        editor = el("textarea", { class: "json-input", rows: "4", "aria-label": "answer (JSON)" }, "{}");
      }
      const submit = el("button", { type: "button", class: "submit-answer", on: { click: () => {
        let value = {};
        if (editor) {
          try { value = JSON.parse(editor.value); } catch (error) {
            outcome.replaceChildren(el("div", { class: "error", role: "alert" }, `The answer is not JSON: ${error.message}`));
            return;
          }
        } else {
          for (const [name, p, input] of fields) {
            if (p.type === "boolean") value[name] = input.checked;
            else if (input.value !== "") value[name] = p.type === "string" ? input.value : Number(input.value);
          }
        }
        send({ input: value }, submit);
      } } }, "Send answer");
      const labelled = fields.map(([name, p, input]) => el("label", { class: "field" }, `${p.title || name} `, input));
      return [el("div", { class: "form" }, labelled, editor, submit), outcome];
    }

    function renderWaiting(ended) {
      const waits = !ended && Array.isArray(run.waiting) ? run.waiting : [];
      const key = JSON.stringify(waits.map((w) => [w.node, w.since, w.tool])) + (graphSpec ? "+spec" : "");
      if (key === shownWaits) return; // keep what a person is typing while the page refreshes
      shownWaits = key;
      waitingBox.replaceChildren(...waits.map((wait) => el("div", { class: "waiting panel", "data-node": wait.node },
        el("h3", {}, "Waiting for an answer: ", el("code", {}, wait.node), " ", badge("WAITING")),
        el("p", { class: "prompt" }, wait.prompt || ""),
        el("p", { class: "muted" }, `${wait.tool || ""}, waiting since ${when(wait.since)}`),
        answerForm(wait))));
    }

    function select(id) {
      selected = id;
      if (svg) for (const group of svg.querySelectorAll("g.node[data-node]")) {
        if (group.getAttribute("data-node") === id) group.setAttribute("data-selected", "");
        else group.removeAttribute("data-selected");
      }
      for (const row of nodeRows.children) row.classList.toggle("selected", row.dataset.node === id);
      detail.replaceChildren(nodeDetail(id, id ? run.nodes[id] : null));
    }

    function render() {
      const ended = TERMINAL.has(run.status);
      header.replaceChildren(
        el("h2", {}, "Run ", el("code", {}, run.run_id), " ", el("span", { id: "run-status", class: "badge", "data-status": run.status }, run.status)),
        facts([
          ["graph", el("a", { href: `#/graphs/${run.graph_id}` }, graphName)], ["version", `v${run.version}`],
          ["started", when(run.started_at)], ["finished", when(run.finished_at)], ["progress", progressBar(run.progress)],
          ["model use", run.usage && run.usage.llm_calls ? `${run.usage.llm_calls} llm.converse calls, ${run.usage.input_tokens} tokens in, ${run.usage.output_tokens} out, about ${PLAN_FIELDS.estimated_cost_usd[1](run.usage.estimated_cost_usd)}` : null],
          ["Step Functions", IN_AWS ? el("a", { href: run.console_url, target: "_blank", rel: "noreferrer", id: "console-link" }, "open this execution in the AWS console") : null],
        ]),
        run.error ? el("div", { class: "error", id: "run-error", role: "alert" }, el("strong", {}, run.error.code), `: ${run.error.message}`) : "");
      actions.replaceChildren(...(ended ? [el("span", { class: "muted" }, `This run has ended (${run.status.toLowerCase().replace("_", " ")})${run.resumes ? `, resumed ${run.resumes}×` : ""}.`),
        run.status === "SUCCEEDED" ? "" : el("button", { id: "resume-run", type: "button", on: { click: resume } }, "Resume run")]
        : [el("button", { id: "cancel-run", class: "danger", type: "button", on: { click: cancel } }, "Cancel run")]));
      renderWaiting(ended);
      if (svg) colourNodes(svg, run.nodes);
      nodeRows.replaceChildren(...Object.entries(run.nodes).map(([id, node]) => el("tr", {
        class: `clickable${id === selected ? " selected" : ""}`, "data-node": id, on: { click: () => select(id) } },
      el("td", { class: "mono" }, id), el("td", {}, badge(node.status)), el("td", {}, node.tool || ""),
      el("td", {}, String(node.attempts)), el("td", {}, String(node.iterations)),
      el("td", {}, node.duration_ms !== null && node.duration_ms !== undefined ? `${node.duration_ms} ms` : ""))));
      state.replaceChildren(
        el("details", {}, el("summary", {}, "Input"), pre(run.input ?? null)),
        el("details", {}, el("summary", {}, "State"), pre(run.state ?? null)));
      if (selected) detail.replaceChildren(nodeDetail(selected, run.nodes[selected]));
    }

    async function cancel() {
      if (!confirm(`Cancel run ${run.run_id}?`)) return;
      actionOutcome.replaceChildren();
      try {
        await api(`/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
      } catch (error) {
        failed(error, actionOutcome);
      }
    }

    // Resume: the same run goes on (succeeded nodes are not run again); the page follows it afresh.
    async function resume() {
      actionOutcome.replaceChildren();
      try {
        await api(`/runs/${encodeURIComponent(runId)}/resume`, { method: "POST" });
        if (gen === generation) route();
      } catch (error) {
        failed(error, actionOutcome);
      }
    }

    view.replaceChildren(
      el("section", { class: "panel" }, header, actions, actionOutcome, waitingBox),
      el("div", { class: "grid" },
        el("section", { class: "panel" }, el("h3", {}, "Diagram"),
          el("div", { class: "legend" }, NODE_STATUSES.map((s) => badge(s))), picture),
        detail),
      el("section", { class: "panel" }, el("h3", {}, "Nodes"),
        el("table", { id: "nodes" }, el("thead", {}, el("tr", {}, ["Node", "Status", "Tool", "Attempts", "Iterations", "Duration"].map((h) => el("th", {}, h)))), nodeRows)),
      el("section", { class: "panel" }, el("h3", {}, "Events "), eventsNote,
        el("div", { class: "events" }, el("table", { id: "event-log" }, el("thead", {}, el("tr", {}, ["At", "Type", "Node", "Attempt", "Message"].map((h) => el("th", {}, h)))), events))),
      el("section", { class: "panel" }, state),
    );
    select(null);
    render();
    api(`/graphs/${encodeURIComponent(run.graph_id)}`).then((graph) => {
      if (gen !== generation) return;
      graphName = graph.name;
      graphSpec = graph.spec || null;
      render();
    }).catch(() => {}); // a deleted graph keeps its id as the name
    loadDiagram(run.graph_id, run.version).then((drawn) => {
      if (gen !== generation) return;
      svg = drawn;
      svg.addEventListener("click", (event) => {
        const group = event.target.closest("g.node[data-node]");
        if (group) select(group.getAttribute("data-node"));
      });
      picture.replaceChildren(svg);
      colourNodes(svg, run.nodes);
      if (selected) select(selected);
    }).catch((error) => { picture.replaceChildren(); failed(error, picture); });

    // The event log, each event once (by `seq` when events carry one).
    let lastSeq = 0;
    let mode = "polling";
    function appendEvent(event) {
      if (typeof event.seq === "number") {
        if (event.seq <= lastSeq) return;
        lastSeq = event.seq;
      }
      events.append(el("tr", { "data-type": event.type, "data-seq": event.seq },
        el("td", { class: "mono" }, event.at ? new Date(event.at).toLocaleTimeString() : ""), el("td", {}, event.type),
        el("td", { class: "mono" }, event.node || ""), el("td", {}, event.attempt ?? ""), el("td", {}, event.message || "")));
      eventsNote.textContent = `(${events.children.length}, ${mode})`;
    }

    async function reload() {
      const fresh = await api(`/runs/${encodeURIComponent(runId)}`);
      if (gen !== generation) return;
      run = fresh;
      render();
    }

    // Pushed: subscribe on the stack's WebSocket (DESIGN "Live events"). True once the run has ended there,
    // false if the socket could not be used (then the page polls).
    function followSocket() {
      return new Promise((resolve) => {
        let socket;
        try {
          const url = new URL(WS_URL);
          url.searchParams.set("api_key", getKey() || "");
          socket = new WebSocket(url);
        } catch {
          resolve(false);
          return;
        }
        let done = false;
        let pending = null;
        const stop = (ended) => {
          if (done) return;
          done = true;
          clearInterval(watch);
          try { socket.close(); } catch { /* already closed */ }
          resolve(ended);
        };
        const watch = setInterval(() => { if (gen !== generation) stop(true); }, 500);
        socket.addEventListener("open", () => {
          mode = "live";
          eventsNote.textContent = `(${events.children.length}, ${mode})`;
          socket.send(JSON.stringify({ action: "subscribe", run_id: runId, after: lastSeq }));
        });
        socket.addEventListener("message", (message) => {
          let data;
          try { data = JSON.parse(message.data); } catch { return; }
          if (data.type === "event" && data.run_id === runId && data.event) {
            appendEvent(data.event);
            const status = NODE_EVENT_STATUS[data.event.type];
            if (status && run.nodes[data.event.node]) {
              run.nodes[data.event.node].status = status;
              render();
            }
            // Attempts, timings and outputs come with the run's detail, read once the burst settles.
            if (!pending) pending = setTimeout(() => { pending = null; reload().catch(() => {}); }, 300);
          } else if (data.type === "run" && data.run_id === runId) {
            reload().catch(() => {}).finally(() => stop(true));
          } else if (data.type === "error") {
            stop(false);
          }
        });
        socket.addEventListener("error", () => stop(false));
        socket.addEventListener("close", () => stop(false));
      });
    }

    // Polled: follow `next` until it is null (it stays set while the run is running).
    let cursor = null;
    let logDone = false;
    async function followEvents() {
      // A page whose `next` is null ends the log: the cursor of that page is not given, so never ask again.
      while (!logDone) {
        const query = new URLSearchParams({ limit: "200" });
        if (cursor) query.set("after", cursor);
        const page = await api(`/runs/${encodeURIComponent(runId)}/events?${query}`);
        if (gen !== generation) return;
        for (const event of page.events) appendEvent(event);
        eventsNote.textContent = `(${events.children.length}, ${mode})`;
        // `next` is the seq of the last event (0 before the first is numbered), null once the log has ended.
        if (page.next === null || page.next === undefined) { logDone = true; return; }
        cursor = page.next;
        if (page.events.length < 200) return;
      }
    }

    if (WS_URL && !TERMINAL.has(run.status)) {
      if (await followSocket()) return;
      if (gen !== generation) return;
      mode = "polling";
      if (lastSeq) cursor = String(lastSeq); // the socket's events are numbered: the log goes on after them
    }
    while (gen === generation) {
      try {
        await followEvents();
        if (gen !== generation) return;
        if (TERMINAL.has(run.status) && logDone) return;
        await sleep(POLL_MS);
        if (gen !== generation) return;
        await reload();
      } catch (error) {
        if (error.code === "unauthorized") return failed(error);
        eventsNote.textContent = `(${events.children.length}; retrying: ${error.message})`;
        await sleep(POLL_MS * 3);
      }
    }
  }

  // ------------------------------------------------------------------ routing

  async function route() {
    generation += 1;
    const gen = generation;
    if (!getKey()) return askForKey();
    keyPanel.hidden = true;
    showKeyState();
    const [path, query] = (location.hash.replace(/^#/, "") || "/graphs").split("?");
    const parts = path.split("/").filter(Boolean);
    const params = new URLSearchParams(query || "");
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === parts[0]);
    }
    view.replaceChildren(el("p", { class: "muted" }, "loading…"));
    try {
      if (parts[0] === "runs" && parts[1]) await runView(gen, decodeURIComponent(parts[1]));
      else if (parts[0] === "runs") await runsView(gen, params);
      else if (parts[0] === "graphs" && parts[1]) await graphView(gen, decodeURIComponent(parts[1]));
      else await graphsView(gen);
    } catch (error) {
      if (gen !== generation) return;
      if (error.code !== "unauthorized") view.replaceChildren();
      failed(error);
    }
  }

  window.addEventListener("hashchange", route);
  route();
})();
