// The public number ledger (/ledger): GET /api/ledger for a day, shown as a table (a card per number on a phone).
// No sign-in: the ledger holds only public data.

const $ = (id) => document.getElementById(id);
const LABELS = ["原号码", "所属单位", "整合方式", "过渡期", "当日状态", "请拨打"];
let numbers = [];

function cell(row, label, content, className = "") {
  const td = row.insertCell();
  td.dataset.label = label;
  td.className = className;
  const inner = document.createElement("div");
  for (const part of content) inner.append(part);
  td.append(inner);
}

function element(tag, text, className = "") {
  const node = document.createElement(tag);
  node.textContent = text;
  node.className = className;
  return node;
}

function windowText(entry) {
  if (!entry.window_start) return "—";
  return `${entry.window_start} 至 ${entry.window_end}`;
}

function render() {
  const wanted = $("find").value.trim();
  const shown = numbers.filter((n) => !wanted || n.number.includes(wanted) || n.unit.includes(wanted));
  const body = $("ledger").tBodies[0];
  body.replaceChildren();
  for (const entry of shown) {
    const row = body.insertRow();
    const unit = [entry.unit];
    if (entry.guidance) unit.push(element("small", entry.guidance));
    cell(row, LABELS[0], [entry.number], "number");
    cell(row, LABELS[1], unit);
    cell(row, LABELS[2], [entry.mode_name]);
    cell(row, LABELS[3], [windowText(entry)]);
    cell(row, LABELS[4], [element("span", entry.status_name, `status ${entry.status}`)]);
    cell(row, LABELS[5], [entry.call_instead], "instead");
  }
  const counts = {};
  for (const n of numbers) counts[n.status_name] = (counts[n.status_name] || 0) + 1;
  const parts = Object.entries(counts).map(([name, count]) => `${name} ${count} 个`);
  $("summary").textContent = `${$("at").value} 共 ${numbers.length} 个号码：${parts.join("，")}` +
    (shown.length === numbers.length ? "" : `（显示 ${shown.length} 个）`);
}

// ``at``: the day asked for, as the address or the date field gives it ("": today)
async function load(at) {
  const query = at ? `?at=${encodeURIComponent(at)}` : "";
  $("csv").href = `/api/ledger${query ? query + "&" : "?"}format=csv`;
  $("json").href = `/api/ledger${query}`;
  const reply = await fetch(`/api/ledger${query}`);
  const data = await reply.json();
  if (!reply.ok) {
    const badDay = data.error.details && data.error.details.fields && data.error.details.fields.at;
    $("error").textContent = badDay ? `查询失败：日期“${at}”不存在，请按“年-月-日”选择日期` : "查询失败，请稍后再试";
    $("error").hidden = false;
    return;
  }
  $("error").hidden = true;
  $("at").value = data.at;
  numbers = data.numbers;
  render();
  document.body.dataset.loaded = data.at;  // the day shown, for whoever waits for it (the tests)
}

$("at").addEventListener("change", () => {
  const url = new URL(location.href);
  if ($("at").value) url.searchParams.set("at", $("at").value); else url.searchParams.delete("at");
  history.replaceState(null, "", url);
  load($("at").value);
});
$("find").addEventListener("input", render);
$("query").addEventListener("submit", (event) => event.preventDefault());
// the address's day goes to the API as written: a date field would drop 2020-02-30 silently, the API names it
load(new URLSearchParams(location.search).get("at") || "");
