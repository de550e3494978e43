// The aioflags console: plain JavaScript, no library, no build step.
// Flag data is only ever set as text (textContent, value, setAttribute),
// never parsed as markup.
"use strict";

const token = document.querySelector('meta[name="aioflags-token"]').content;
const rows = new Map(); // flag key -> {row, toggle, serves, version}
let served = []; // the flags as the service last said it serves them

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  if (text !== null) node.textContent = text;
  return node;
}

async function change(body) {
  const problem = document.getElementById("problem");
  problem.textContent = "";
  try {
    const response = await fetch("api/flag", {
      method: "POST",
      headers: { "content-type": "application/json", "x-aioflags-token": token },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({ message: response.statusText }));
      problem.textContent = `${body.key}: ${answer.message}`;
      showFlags(served); // nothing changed: show what is served, not the choice
    }
  } catch (error) {
    problem.textContent = `${body.key}: ${error}`;
    showFlags(served);
  }
}

function newRow(key, label) {
  // label: the key with its bidirectional controls written out (the service's);
  // key: exactly what a change names.
  const row = element("tr");
  row.append(element("td", { class: "key" }, label));
  const toggle = element("button", { type: "button", role: "switch", "aria-label": `${label} on` });
  toggle.addEventListener("click", () => {
    change({ key, on: toggle.getAttribute("aria-checked") !== "true" });
  });
  const serves = element("td");
  const version = element("td");
  const cell = element("td");
  cell.append(toggle);
  row.append(cell, serves, version);
  return { row, toggle, serves, version, variations: null };
}

function showServes(entry, flag) {
  const current = flag.serves === null ? "" : String(flag.serves);
  const signature = JSON.stringify([flag.variations, flag.serves === "rules"]);
  if (flag.variations.length < 2) {
    entry.serves.replaceChildren(element("span", {}, flag.variations.length ? flag.variations[0] : "(no variations)"));
    entry.variations = null;
    return;
  }
  let select = entry.serves.querySelector("select");
  if (select === null || entry.variations !== signature) {
    select = element("select", { "aria-label": `${flag.label} serves` });
    if (flag.serves === "rules") {
      select.append(element("option", { value: "rules", disabled: "" }, "rules"));
    }
    flag.variations.forEach((value, index) => {
      select.append(element("option", { value: String(index) }, value));
    });
    select.addEventListener("change", () => {
      change({ key: flag.key, variation: Number(select.value) });
    });
    entry.serves.replaceChildren(select);
    entry.variations = signature;
  }
  select.value = current;
}

function showFlags(flags) {
  const body = document.getElementById("flags");
  const seen = new Set();
  for (const flag of flags) {
    seen.add(flag.key);
    let entry = rows.get(flag.key);
    if (entry === undefined) {
      entry = newRow(flag.key, flag.label);
      rows.set(flag.key, entry);
    }
    entry.toggle.setAttribute("aria-checked", String(flag.on));
    showServes(entry, flag);
    entry.version.textContent = String(flag.version);
    body.append(entry.row); // in the server's order (by key)
  }
  for (const [key, entry] of rows) {
    if (!seen.has(key)) {
      entry.row.remove();
      rows.delete(key);
    }
  }
}

function showEvaluations(evaluations) {
  const items = evaluations.map((e) => {
    const item = element("li");
    const variation = e.variation === null ? "" : ` (variation ${e.variation})`;
    item.append(
      element("span", { class: "key" }, e.key),
      document.createTextNode(` → ${e.value}${variation} `),
      element("span", { class: "count" }, `× ${e.count}`),
    );
    return item;
  });
  document.getElementById("evaluations").replaceChildren(...items);
}

function connect() {
  const status = document.getElementById("connection");
  const source = new EventSource("api/events");
  source.addEventListener("state", (event) => {
    const state = JSON.parse(event.data);
    document.getElementById("persistence").textContent = state.persistence;
    served = state.flags;
    showFlags(served);
    showEvaluations(state.evaluations);
    status.textContent = "Live";
  });
  source.addEventListener("error", () => {
    status.textContent = "Disconnected: reconnecting…";
  });
}

connect();
