// The aioflags console: plain JavaScript, no library, no build step.
// Flag data is only ever set as text (textContent, value, setAttribute),
// never parsed as markup.
//
// The Flags table is built once per flag and then updated in place: a row,
// its switch and its select are never rebuilt while they can hold focus, so
// an update from the service keeps the focus and the scroll position. The
// filter only toggles `hidden` on rows.
"use strict";

const token = document.querySelector('meta[name="aioflags-token"]').content;
// The lens key: `aioflags serve` prints the console's address with it after
// "#" (a fragment: never sent, never logged). The tab keeps it, and it leaves
// the address bar at once; only a page that has it may make lens links.
const LENS_KEY = "aioflags-lens-key";
const lensKey = (() => {
  const found = /(?:^#|&)lens-key=([^&]*)/.exec(location.hash);
  if (found) {
    history.replaceState(null, "", location.pathname + location.search);
    try {
      sessionStorage.setItem(LENS_KEY, decodeURIComponent(found[1]));
    } catch (error) {
      return decodeURIComponent(found[1]); // (no storage: this page only)
    }
  }
  try {
    return sessionStorage.getItem(LENS_KEY);
  } catch (error) {
    return null;
  }
})();
const rows = new Map(); // flag key -> entry (see newRow)
let served = []; // the flags as the service last said it serves them
let filterText = "";
let detailsKey = null; // the flag whose details are open
let detailsVersion = null;

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  if (text !== null) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// A key as text nodes with a <wbr> after each separator: a long key wraps
// at `-`, `_`, `.`, `/` or `:`, never mid-word.
function breakable(text) {
  const nodes = [];
  for (const part of text.split(/(?<=[-_./:])/)) {
    if (nodes.length) nodes.push(document.createElement("wbr"));
    nodes.push(document.createTextNode(part));
  }
  return nodes;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

// ------------------------------------------------------------------ requests
async function post(path, body, more = {}) {
  // -> [ok, status, answer]; a network failure is status 0.
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-aioflags-token": token, ...more },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({ message: response.statusText }));
    return [response.ok, response.status, answer];
  } catch (error) {
    return [false, 0, { message: String(error) }];
  }
}

function showProblem(text) {
  const problem = $("problem");
  problem.textContent = text;
  problem.hidden = text === "";
  if (text) problem.scrollIntoView({ block: "nearest" });
}

// What a failed request says: the service's own message, or that it is gone.
function failure(status, answer) {
  if (status === 0) return "the flag service did not answer: is `aioflags serve` still running?";
  return answer.message;
}

async function change(body, entry) {
  showProblem("");
  const [ok, status, answer] = await post("api/flag", body);
  if (ok) return;
  showFlags(served); // nothing changed: show what is served, not the choice
  showProblem(`Not changed: ${entry.label}: ${failure(status, answer)}`);
}

// A fixed variation for a flag with rules or targets asks first (they stop
// applying): asked here, before any request, so nothing is refused.
function choose(body, entry) {
  const flag = served.find((f) => f.key === entry.key);
  if (flag && flag.serves === "rules") {
    confirmVariation(body, entry);
    return;
  }
  change(body, entry);
}

async function reset(entry) {
  showProblem("");
  // The button goes away with the change: keep the focus in the row.
  if (document.activeElement === entry.reset) entry.keyButton.focus();
  const [ok, status, answer] = await post("api/reset", { key: entry.key });
  if (!ok) showProblem(`Not reset: ${entry.label}: ${failure(status, answer)}`);
}

// ------------------------------------------------------------------- confirm
let pending = null; // [body, entry] awaiting the confirm dialog

function confirmVariation(body, entry) {
  const dialog = $("confirm");
  pending = [body, entry];
  const value = entry.variations[body.variation];
  $("confirm-heading").textContent = `Serve ${value} to everyone?`;
  $("confirm-message").textContent =
    `${entry.label} has rules or individual targets: they stop applying while it serves one variation.`;
  $("confirm-ok").textContent = `Serve ${value} to everyone`;
  dialog.showModal();
  $("confirm-cancel").focus();
}

function closeConfirm(confirmed) {
  const dialog = $("confirm");
  if (!dialog.open || pending === null) return;
  const [body, entry] = pending;
  pending = null;
  dialog.close();
  const select = entry.serves.querySelector("select");
  if (select !== null) select.focus();
  if (confirmed) change({ ...body, confirm: true }, entry);
  else showFlags(served); // nothing changed: the select shows what is served
}

$("confirm-cancel").addEventListener("click", () => closeConfirm(false));
$("confirm-ok").addEventListener("click", () => closeConfirm(true));
$("confirm").addEventListener("cancel", (event) => {
  event.preventDefault(); // Escape: the same as Cancel
  closeConfirm(false);
});

// --------------------------------------------------------------------- flags
function newRow(flag) {
  // label: the key with its bidirectional controls written out (the service's);
  // key: exactly what a change names.
  const entry = { key: flag.key, label: flag.label, search: flag.label.toLowerCase() };
  entry.row = element("tr", { role: "row" });
  const keyCell = element("td", { role: "cell", class: "key" });
  entry.keyButton = element("button", { type: "button", class: "key", "aria-controls": "details" });
  entry.keyButton.append(...breakable(flag.label));
  entry.keyButton.addEventListener("click", () => openDetails(entry));
  entry.changed = element("span", { class: "changed" });
  entry.changed.hidden = true;
  entry.changed.append(element("span", {}, "changed "));
  entry.reset = element("button", { type: "button", "aria-label": `Reset ${flag.label}` }, "Reset");
  entry.reset.addEventListener("click", () => reset(entry));
  entry.changed.append(entry.reset);
  keyCell.append(entry.keyButton, entry.changed);
  entry.toggle = element("button", { type: "button", role: "switch", "aria-label": `${flag.label} on` });
  entry.toggle.addEventListener("click", () => {
    change({ key: flag.key, on: entry.toggle.getAttribute("aria-checked") !== "true" }, entry);
  });
  const toggleCell = element("td", { role: "cell" });
  toggleCell.append(entry.toggle);
  entry.serves = element("td", { role: "cell" });
  entry.version = element("td", { role: "cell", class: "version" });
  entry.row.append(keyCell, toggleCell, entry.serves, entry.version);
  entry.variations = [];
  return entry;
}

function showServes(entry, flag) {
  const current = flag.serves === null ? "" : String(flag.serves);
  let select = entry.serves.querySelector("select");
  if (flag.variations.length < 2) {
    const text = flag.variations.length ? flag.variations[0] : "(no variations)";
    const span = entry.serves.querySelector("span");
    if (span === null) entry.serves.replaceChildren(element("span", { class: "value" }, text));
    else setText(span, text);
    entry.variations = flag.variations;
    return;
  }
  if (select === null) {
    select = element("select", { "aria-label": `${flag.label} serves` });
    select.addEventListener("change", () => {
      choose({ key: flag.key, variation: Number(select.value) }, entry);
    });
    entry.serves.replaceChildren(select);
  }
  // Options updated in place: a select that has focus keeps it.
  const options = flag.variations.map((value, index) => [String(index), value, false]);
  if (flag.serves === "rules") options.unshift(["rules", "rules", true]);
  if (flag.serves === "rollout") options.unshift(["rollout", "a rollout", true]);
  options.forEach(([value, text, disabled], n) => {
    let option = select.options[n];
    if (option === undefined) {
      option = element("option");
      select.append(option);
    }
    if (option.value !== value) option.value = value;
    setText(option, text);
    if (option.disabled !== disabled) option.disabled = disabled;
  });
  while (select.options.length > options.length) select.options[options.length].remove();
  entry.variations = flag.variations;
  if (select.value !== current) select.value = current;
}

// Rows made per pass: a thousand new flags are built over a few frames,
// never in one long task that would freeze the page.
const BATCH = 200;
let moreRows = false;

function showFlags(flags) {
  const body = $("flags");
  const keys = new Set(flags.map((flag) => flag.key));
  let keysChanged = false;
  // Rows of flags gone first: a row left in place would make the rows after
  // it move below (and moving a node drops the focus inside it).
  for (const [key, entry] of rows) {
    if (!keys.has(key)) {
      entry.row.remove();
      rows.delete(key);
      keysChanged = true;
    }
  }
  let previous = null;
  let created = 0;
  for (const flag of flags) {
    let entry = rows.get(flag.key);
    if (entry === undefined) {
      if (created === BATCH) {
        if (!moreRows) {
          moreRows = true;
          setTimeout(() => {
            moreRows = false;
            showFlags(served);
          });
        }
        break;
      }
      created += 1;
      entry = newRow(flag);
      rows.set(flag.key, entry);
      entry.row.hidden = !entry.search.includes(filterText);
      keysChanged = true;
    }
    const on = String(flag.on);
    if (entry.toggle.getAttribute("aria-checked") !== on) entry.toggle.setAttribute("aria-checked", on);
    showServes(entry, flag);
    setText(entry.version, flag.version === null ? "—" : String(flag.version));
    const changed = flag.changed === true;
    if (entry.changed.hidden === changed) {
      if (!changed && document.activeElement === entry.reset) entry.keyButton.focus();
      entry.changed.hidden = !changed;
    }
    // In the server's order (by key); a row already in place is not moved.
    const next = previous === null ? body.firstChild : previous.nextSibling;
    if (next !== entry.row) body.insertBefore(entry.row, next);
    previous = entry.row;
  }
  if (keysChanged) showFlagKeys();
  showCount();
}

function showFlagKeys() {
  // The Evaluate form's flag chooser.
  const options = [];
  for (const entry of rows.values()) options.push(element("option", { value: entry.key }));
  $("flag-keys").replaceChildren(...options);
}

function showCount() {
  let shown = 0;
  for (const entry of rows.values()) if (!entry.row.hidden) shown += 1;
  const total = rows.size;
  setText($("count"), shown === total ? `${total} flags` : `${shown} of ${total} flags shown`);
}

function filter() {
  filterText = $("filter").value.trim().toLowerCase();
  for (const entry of rows.values()) {
    const hidden = !entry.search.includes(filterText);
    if (entry.row.hidden !== hidden) entry.row.hidden = hidden;
  }
  showCount();
}

$("filter").addEventListener("input", filter);

// ------------------------------------------------------------------- details
function listSection(title, items) {
  const nodes = [element("h3", {}, title)];
  if (items.length === 0) {
    nodes.push(element("p", { class: "note" }, "none"));
    return nodes;
  }
  const list = element("ul");
  for (const item of items) {
    const li = element("li");
    li.append(...(Array.isArray(item) ? item : [item]));
    list.append(li);
  }
  nodes.push(list);
  return nodes;
}

function term(list, name, value) {
  list.append(element("dt", {}, name), element("dd", {}, value));
}

function showDetails(details) {
  const body = [];
  if (details.description) body.push(element("p", { class: "description" }, details.description));
  if (details.tags && details.tags.length) {
    const tags = element("p", { class: "tags" });
    tags.append(element("span", { class: "note" }, "Tags: "));
    for (const tag of details.tags) tags.append(element("span", { class: "tag" }, tag), " ");
    body.push(tags);
  }
  body.push(
    element(
      "p",
      { class: details.changed ? "changed" : "note" },
      details.changed
        ? `Changed from the console${details.file ? `: ${details.file}` : ""}.`
        : "As the flag file says.",
    ),
  );
  const facts = element("dl");
  const flagd = details.flagd; // a flagd flag: its state, default variant, targeting
  term(facts, "On", details.on ? "yes" : "no");
  if (flagd) {
    term(facts, "State", flagd.state);
    term(facts, "Default variant", flagd.defaultVariant === null ? "none (the code's default)" : flagd.defaultVariant);
  }
  term(facts, "Version", details.version === null ? "—" : String(details.version));
  term(facts, flagd ? "When disabled" : "When off", details.off);
  term(facts, flagd ? "When targeting chooses none" : "Fallthrough", details.fallthrough);
  body.push(facts);
  if (flagd) {
    body.push(
      ...listSection(
        "Variants",
        details.variations.map((v) => `${v.name}: ${v.value}`),
      ),
      element("h3", {}, "Targeting"),
      flagd.targeting === null
        ? element("p", { class: "note" }, "none: the default variant for everyone")
        : element("pre", { class: "targeting", "aria-label": `${details.label} targeting` }, flagd.targeting),
      ...listSection(
        "Metadata",
        Object.entries(flagd.metadata).map(([name, value]) => `${name}: ${value}`),
      ),
    );
    $("details-body").replaceChildren(...body);
    return;
  }
  body.push(
    ...listSection(
      "Variations",
      details.variations.map((v) => `${v.index}: ${v.value}${v.name ? ` (${v.name})` : ""}`),
    ),
    ...listSection(
      "Prerequisites",
      details.prerequisites.map((p) => p.variation), // "checkout is true (variation 0)"
    ),
    ...listSection(
      "Targets",
      details.targets.map((t) => `${t.kind} ${t.values.join(", ")}: ${t.serves}`),
    ),
    ...listSection(
      "Rules",
      details.rules.map((rule) => {
        const parts = [element("strong", {}, `Rule ${rule.index}`)];
        if (rule.description) parts.push(` (${rule.description})`);
        parts.push(": if ");
        rule.clauses.forEach((clause, n) => {
          if (n) parts.push(" and ");
          parts.push(element("span", { class: "clause" }, clause));
        });
        parts.push(`: ${rule.serves}`);
        return parts;
      }),
    ),
  );
  $("details-body").replaceChildren(...body);
}

async function loadDetails(key) {
  try {
    const response = await fetch(`api/flag?key=${encodeURIComponent(key)}`);
    const answer = await response.json().catch(() => ({ message: response.statusText }));
    if (key !== detailsKey) return; // another flag was opened meanwhile
    if (response.ok) {
      detailsVersion = answer.version;
      showDetails(answer);
    } else {
      $("details-body").replaceChildren(element("p", {}, answer.message));
    }
  } catch (error) {
    if (key === detailsKey) $("details-body").replaceChildren(element("p", {}, String(error)));
  }
}

function openDetails(entry) {
  detailsKey = entry.key;
  detailsVersion = null;
  for (const other of rows.values()) other.keyButton.setAttribute("aria-expanded", String(other === entry));
  $("details-heading").textContent = `${entry.label} details`;
  $("details-body").replaceChildren(element("p", { class: "note" }, "Loading…"));
  $("details").hidden = false;
  $("details-heading").focus();
  loadDetails(entry.key);
}

function refreshDetails(flags) {
  if (detailsKey === null) return;
  const flag = flags.find((f) => f.key === detailsKey);
  if (flag === undefined) {
    $("details-body").replaceChildren(element("p", {}, "The flag file no longer has this flag."));
  } else if (detailsVersion !== null && flag.version !== detailsVersion) {
    detailsVersion = flag.version; // one load per change, not one per update
    loadDetails(detailsKey);
  }
}

$("details-close").addEventListener("click", () => {
  const entry = rows.get(detailsKey);
  detailsKey = null;
  $("details").hidden = true;
  if (entry !== undefined) {
    entry.keyButton.setAttribute("aria-expanded", "false");
    entry.keyButton.focus();
  }
});

// ------------------------------------------------------------------ evaluate
function showResult(nodes) {
  const result = $("result");
  result.replaceChildren(...nodes);
  result.hidden = false;
}

async function evaluate(event) {
  event.preventDefault();
  const text = $("context").value.trim();
  let context = text;
  if (text.startsWith("{")) {
    try {
      context = JSON.parse(text);
    } catch (error) {
      showResult([element("p", { class: "error" }, `The context is not valid JSON: ${error.message}`)]);
      return;
    }
  }
  const body = { context };
  const flag = $("evaluate-flag").value.trim();
  if (flag) body.flag = flag;
  const [ok, , answer] = await post("api/evaluate", body);
  if (!ok) {
    showResult([element("p", { class: "error" }, answer.message)]);
    return;
  }
  const count = `${answer.results.length} flag${answer.results.length === 1 ? "" : "s"}`;
  const who = answer.context.error
    ? element(
        "p",
        { class: "error" },
        `${answer.context.error}. What your app gets with it from ${count}: the default (error: user not specified).`,
      )
    : element("p", {}, `${answer.context.kinds.join(", ")} ${answer.context.key}: ${count}`);
  const table = element("table", { "aria-label": "Values" });
  const head = element("tr");
  for (const name of ["Flag", "Value", "Variation", "Reason"]) head.append(element("th", { scope: "col" }, name));
  table.append(element("thead"), element("tbody"));
  table.tHead.append(head);
  for (const r of answer.results) {
    const row = element("tr");
    const key = element("td", { class: "key" });
    key.append(...breakable(r.label));
    row.append(
      key,
      element("td", { class: "value" }, r.value),
      element("td", {}, r.variation === null ? "—" : String(r.variation)),
      element("td", { class: r.reason_kind === "ERROR" ? "error" : "" }, r.reason),
    );
    table.tBodies[0].append(row);
  }
  // Properties the old user JSON (no "kind") ignores: read as LaunchDarkly
  // reads them, and said, with how to write them.
  const ignored = answer.context.note ? [element("p", { class: "error", id: "evaluate-ignored" }, `${answer.context.note}.`)] : [];
  showResult([who, ...ignored, table]);
}

$("evaluate").addEventListener("submit", evaluate);

// ---------------------------------------------------------------- the lens
let lensRows = 0;

function lensVariations(select, key) {
  // The chosen flag's variations, by index (the service maps them to values).
  const flag = served.find((f) => f.key === key);
  const options = flag ? flag.variations : [];
  const keep = select.value;
  select.replaceChildren(...options.map((v, i) => element("option", { value: String(i) }, v)));
  if (keep && Number(keep) < options.length) select.value = keep;
  select.disabled = options.length === 0;
}

function addLensFlag(focus = true) {
  lensRows += 1;
  const n = lensRows;
  const item = element("li");
  const key = element("input", {
    list: "flag-keys",
    autocomplete: "off",
    spellcheck: "false",
    "aria-label": `Flag ${n}`,
  });
  const value = element("select", { "aria-label": `Flag ${n} serves` });
  value.disabled = true;
  const remove = element("button", { type: "button", "aria-label": `Remove flag ${n}` }, "Remove");
  key.addEventListener("input", () => lensVariations(value, key.value.trim()));
  remove.addEventListener("click", () => item.remove());
  item.append(key, value, remove);
  $("lens-flags").append(item);
  if (focus) key.focus();
}

function lensProblem(text) {
  const problem = $("lens-problem");
  problem.textContent = text;
  problem.hidden = text === "";
}

async function makeLens(event) {
  event.preventDefault();
  lensProblem("");
  const flags = [];
  for (const item of $("lens-flags").children) {
    const [key, value] = item.querySelectorAll("input, select");
    if (key.value.trim() === "") continue; // an empty row: no flag (a trace alone is a link)
    if (value.disabled) {
      lensProblem(`No flag ${key.value.trim()}: pick one of the list.`);
      return;
    }
    flags.push({ key: key.value.trim(), variation: Number(value.value) });
  }
  if (!flags.length && !$("lens-trace").checked) {
    lensProblem("Add a flag and the variation it serves, or ask for a trace.");
    return;
  }
  const body = {
    url: $("lens-url").value.trim(),
    flags,
    ttl: Number($("lens-ttl").value),
    context_key: $("lens-context").value.trim() || null,
    trace: $("lens-trace").checked,
  };
  const [ok, , answer] = await post("api/lens", body, { "x-aioflags-lens-key": lensKey || "" });
  if (!ok) {
    lensProblem(answer.message);
    return;
  }
  $("lens-link").value = answer.link;
  // What the link will not do in the app (a flag outside its allow), said here.
  const warning = $("lens-warning");
  warning.textContent = answer.warning || "";
  warning.hidden = !answer.warning;
  setText($("lens-copied"), "");
  $("lens-made").hidden = false;
  $("lens-link").select();
}

async function copyLens() {
  const link = $("lens-link");
  link.select();
  try {
    await navigator.clipboard.writeText(link.value);
    setText($("lens-copied"), "Copied");
  } catch (error) {
    // No clipboard (plain http on another address): it is selected to copy.
    setText($("lens-copied"), "Selected: press Ctrl+C (⌘C) to copy");
  }
}

$("lens-add").addEventListener("click", () => addLensFlag());
$("lens").addEventListener("submit", makeLens);
$("lens-copy").addEventListener("click", copyLens);

function showLens(on) {
  // Without a lens secret the section says how to start one that has it.
  if (on && $("lens").hidden && !$("lens-flags").children.length) addLensFlag(false);
  $("lens-section").hidden = false;
  $("lens-off").hidden = on;
  $("lens").hidden = !on;
  // Without the key, the form says where to get it, and makes nothing.
  $("lens-locked").hidden = !on || Boolean(lensKey);
  $("lens-make").disabled = !lensKey;
}

// ------------------------------------------------------------------------ log
function contexts(list) {
  return list.map((c) => (c.kind === "user" ? c.key : `${c.kind}:${c.key}`)).join(", ");
}

function logRow(e) {
  const item = element("li", { class: e.type === "migration" ? "migration" : e.default ? "fallback" : "" });
  const line = element("div", { class: "line" });
  line.append(element("span", { class: "key" }, e.key));
  if (e.type === "migration") {
    line.append(` migration ${e.operation}`);
    const origins = e.origins
      .map((o) => {
        const ms = e.latencies ? e.latencies[o] : undefined;
        const latency = typeof ms === "number" ? ` ${Number(ms.toPrecision(2))} ms` : "";
        return `${o}${latency}`;
      })
      .join(", ");
    line.append(`: ${origins || "no origin ran"}`);
    if (e.errors && e.errors.length) line.append(" ", element("span", { class: "badge error" }, `errors: ${e.errors.join(", ")}`));
    if (e.consistent === true) line.append(" ", element("span", { class: "badge" }, "consistent"));
    if (e.consistent === false) line.append(" ", element("span", { class: "badge error" }, "inconsistent"));
  } else {
    const variation = e.variation === null || e.variation === undefined ? "" : ` (variation ${e.variation})`;
    line.append(` → ${e.value}${variation}`);
    if (e.default) {
      line.append(" ", element("span", { class: "badge error" }, "default"));
      if (e.error) line.append(" ", element("span", { class: "badge error" }, e.error));
    }
  }
  line.append(" ", element("span", { class: "count" }, `× ${e.count}`));
  item.append(line);
  const more = [];
  if (e.reason) more.push(e.reason);
  if (e.contexts && e.contexts.length) more.push(`from ${contexts(e.contexts)}`);
  if (e.last) more.push(`last at ${clock(e.last)}`);
  if (more.length) item.append(element("div", { class: "note" }, more.join(" · ")));
  return item;
}

function showEvaluations(state) {
  const evaluations = state.evaluations;
  $("evaluations").replaceChildren(...evaluations.map(logRow));
  const empty = $("log-empty");
  empty.hidden = evaluations.length > 0;
  if (evaluations.length === 0) {
    const uri = state.events_uri || location.origin;
    setText(
      empty,
      `Nothing evaluated yet. Point your app's events at this service: ` +
        `Config(..., events_uri="${uri}"); SDKs send events when they flush ` +
        `(every few seconds, or on await client.flush()).`,
    );
  }
}

// ---------------------------------------------------------------------- sdks
function showSdks(sdks) {
  const items = sdks.map((sdk) => {
    const name = sdk.version ? `${sdk.name} ${sdk.version}` : sdk.name;
    const via = sdk.via.join(", ");
    const state = sdk.connected
      ? `connected since ${clock(sdk.since)}`
      : `seen since ${clock(sdk.since)}, last at ${clock(sdk.last_seen)}`;
    const item = element("li");
    item.append(element("strong", {}, name), ` (${via}) ${state}`);
    return item;
  });
  $("sdks").replaceChildren(...items);
  $("sdks-empty").hidden = sdks.length > 0;
}

// -------------------------------------------------------------------- trouble
function showTrouble(trouble) {
  const alert = $("trouble");
  if (!trouble) {
    if (!alert.hidden) {
      alert.hidden = true;
      alert.replaceChildren();
    }
    return;
  }
  const where = trouble.line === null || trouble.line === undefined ? trouble.file : `${trouble.file}, line ${trouble.line}`;
  const text = `${where}: ${trouble.message}`;
  if (alert.hidden || alert.dataset.text !== text) {
    alert.dataset.text = text;
    alert.replaceChildren(
      element("strong", {}, "The flag file cannot be read. "),
      element("span", {}, text),
      element("span", {}, " The service keeps serving the last flags it read."),
    );
    alert.hidden = false;
  }
}

// -------------------------------------------------------------------- guards
// A banner per guarded rollout that alerted or pinned (a client's guards,
// shown by FlagServer.show_guards): its flag, the metric, both arms'
// figures, what it pinned to, and a Release button.
let guardsText = "";

function percent(rate) {
  return rate === null || rate === undefined ? "no requests" : `${(rate * 100).toFixed(1)} %`;
}

function armText(arm) {
  const role = arm.control ? "control" : "treatment";
  const parts = [
    `${arm.requests} requests`,
    `${arm.errors} errors (${percent(arm.error_rate)})`,
  ];
  if (arm.latency !== null && arm.latency !== undefined) {
    parts.push(`${(arm.latency * 1000).toFixed(1)} ms (geometric mean)`);
  }
  for (const [name, mean] of Object.entries(arm.metrics || {})) {
    parts.push(`${name} ${mean.toPrecision(4)} (mean)`);
  }
  return `${role} ${arm.value}: ${parts.join(", ")}`;
}

function guardBanner(guard) {
  const pinned = guard.state === "pinned";
  const banner = element("section", {
    class: pinned ? "guard pinned" : "guard",
    role: "alert",
    "aria-label": `Guard ${guard.label}`,
  });
  const what = pinned
    ? `pinned to ${guard.control}`
    : "alerted (the rollout goes on: it does not pin)";
  banner.append(
    element("strong", {}, `Guard ${guard.label} on ${guard.flag_label}: `),
    element("span", {}, `${guard.metric || "a metric"} is worse in the treatment; ${what}.`),
  );
  const arms = element("ul");
  arms.append(...guard.arms.map((arm) => element("li", {}, armText(arm))));
  const release = element("button", { type: "button" }, `Release ${guard.label}`);
  release.addEventListener("click", () => releaseGuard(guard));
  banner.append(arms, release);
  return banner;
}

async function releaseGuard(guard) {
  showProblem("");
  const path = `api/guards/${encodeURIComponent(guard.name)}/release`;
  const [ok, status, answer] = await post(path, {});
  if (!ok) showProblem(`Not released: ${guard.label}: ${failure(status, answer)}`);
}

function showGuards(guards) {
  const shown = guards.filter((g) => g.state === "alerted" || g.state === "pinned");
  const text = JSON.stringify(shown);
  if (text === guardsText) return; // (unchanged: the focus stays on its button)
  guardsText = text;
  $("guards").replaceChildren(...shown.map(guardBanner));
}

// ------------------------------------------------------------------ the feed
function show(state) {
  setText($("persistence"), state.persistence);
  served = state.flags;
  showTrouble(state.trouble);
  showGuards(state.guards || []);
  showFlags(served);
  refreshDetails(served);
  showEvaluations(state);
  showSdks(state.sdks || []);
  showLens(state.lens === true);
}

function connect() {
  const status = $("connection");
  const source = new EventSource(`api/events?token=${encodeURIComponent(token)}`);
  source.addEventListener("state", (event) => {
    show(JSON.parse(event.data));
    setText(status, "Live");
  });
  source.addEventListener("error", () => {
    // A refusal (too many console pages open) or an error status ends it for good.
    setText(
      status,
      source.readyState === EventSource.CLOSED
        ? "Disconnected: reload the page (too many console pages open, or the service stopped)"
        : "Disconnected: reconnecting…",
    );
  });
}

connect();
