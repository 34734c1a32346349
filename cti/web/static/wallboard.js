// The 12345 wallboard: agents, the queue, today's service levels, remote seats and units, the PBX link and
// the alerts, live over the WebSocket: the service sends the board whole after hello (again after every
// reconnect) and then numbered updates of what changed (the agents, seats and parts that changed, nothing
// else: schemas WsWallboardUpdate), drawn in place; nothing is polled. An update whose number does not follow
// the last means one was missed: the board reconnects at once for a fresh snapshot. Timers run from the service's clock ("now" in each
// message), so a wall PC's skew does not show. Callers come masked from the service (a public screen).
// Supervisors listen, whisper or barge from here (POST /api/calls/{linkedid}/listen).

const AGENT_STATES = {
  logged_out: "未签入", ready: "就绪", paused: "暂停", in_use: "通话中", busy: "忙", ringing: "振铃中",
  on_hold: "保持中", unavailable: "话机离线", invalid: "话机无效", unknown: "未知",
};
const PBX_STATES = { up: "已连接", down: "已断开" };
const MODES = { listen: "监听", whisper: "耳语", barge: "强插" };
const ERRORS = {
  unauthorized: "登录已失效，请重新登录", forbidden: "无权进行此操作", no_phone: "您没有登记话机（agents.yaml supervisors）",
  no_such_call: "通话已结束", not_answered: "通话尚未接通", pbx_refused: "交换机拒绝了此操作",
  pbx_unavailable: "交换机未连接", pbx_timeout: "交换机无响应", too_many_attempts: "登录失败次数过多，请稍后再试",
};

import { signInWith, signOutOf } from "/static/session.js";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cti-token");
let me = null;
let zone = "Asia/Shanghai";
let skew = 0; // the service's clock less this PC's, in ms
let socket = null;
let retry = 500;
let seq = null; // the last update the board shows (null: no snapshot yet)
let resync = false; // the socket is closed for a fresh snapshot (a missed update), not lost
const agents = new Map(); // agent_id -> the agent as the board shows it
const cards = new Map(); // agent_id -> its card on the page
const seats = new Map();
const alerts = new Map(); // id -> alert message
let parts = {}; // queue, today, window, units, pbx
let thresholds = { answer_rate: 0.8, wait: 60, min_calls: 10 };

// -- times ------------------------------------------------------------------------------------------

const now = () => Date.now() + skew;
function elapsed(since) {
  if (since === null || since === undefined) return "—";
  const s = Math.max(0, Math.floor((now() - since * 1000) / 1000));
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  return `${h ? `${h}:` : ""}${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}
function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value >= 60 ? `${Math.floor(value / 60)}分${Math.round(value % 60)}秒` : `${Math.round(value)}秒`;
}
const percent = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`);
function clock() {
  $("clock").textContent = new Intl.DateTimeFormat("zh-CN", {
    timeZone: zone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    hourCycle: "h23",
  }).format(new Date(now()));
}

// -- the API ----------------------------------------------------------------------------------------

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method, headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw Object.assign(new Error("无法连接服务器"), { raw: String(error) });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = data.error ? data.error.code : `HTTP ${response.status}`;
    let text = ERRORS[code] || `操作未成功（${code}）`;
    if (code === "unauthorized" && path === "/api/session") text = "工号或密码错误";
    if (response.status === 401 && path !== "/api/session") signOut();
    throw Object.assign(new Error(text), { raw: data.error ? `${code}: ${data.error.message}` : code });
  }
  return data;
}

function status(text, title = "") {
  $("status").textContent = text;
  $("status").title = title;
}

// -- drawing ----------------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function callText(call) {
  return `${call.caller || "未显示号码"} → ${call.dialled_number}${call.unit ? ` ${call.unit}` : ""}`;
}

function countAgents() {
  const counts = {};
  for (const a of agents.values()) counts[a.state] = (counts[a.state] || 0) + 1;
  $("agent-counts").textContent = ["ready", "in_use", "ringing", "paused", "logged_out"]
    .filter((s) => counts[s]).map((s) => `${AGENT_STATES[s]} ${counts[s]}`).join(" · ");
}

function drawAgents() { // the whole grid: after a snapshot
  cards.clear();
  for (const a of agents.values()) cards.set(a.agent_id, agentCard(a));
  $("agents").replaceChildren(...cards.values());
  countAgents();
}

function redrawAgents(changed) { // only the cards of the agents an update holds (1,500 on the grid)
  for (const a of changed) {
    const card = agentCard(a);
    const old = cards.get(a.agent_id);
    if (old) old.replaceWith(card); else $("agents").append(card);
    cards.set(a.agent_id, card);
  }
  countAgents();
}

function agentCard(a) {
  const card = el("div", `agent ${a.state}`);
  card.dataset.agent = a.agent_id;
  const top = el("div", "top");
  top.append(el("span", "name", `${a.name} ${a.agent_id}`));
  const state = el("span", "state", AGENT_STATES[a.state] || a.state);
  state.title = a.state;
  top.append(state);
  card.append(top);
  const line = el("div", "top");
  line.append(el("span", "muted", a.paused && a.reason ? `原因：${a.reason}` : (a.queues.join(" ") || "—")));
  const since = el("span", "since", a.since ? elapsed(a.since) : "—");
  since.dataset.since = a.since || "";
  since.title = "处于此状态的时长";
  line.append(since);
  card.append(line);
  if (a.call) {
    const call = el("div", "call");
    const who = el("span", "", callText(a.call));
    const talk = el("span", "timer", elapsed(a.call.answered_at));
    talk.dataset.since = a.call.answered_at || "";
    talk.title = "通话时长";
    call.append(who, talk);
    call.title = `${callText(a.call)} · 通话`;
    card.append(call);
    if (me && me.role === "supervisor") {
      const spy = el("div", "spy");
      for (const [mode, label] of Object.entries(MODES)) {
        const button = el("button", "", label);
        button.dataset.mode = mode;
        button.title = `${label} ${a.name}`;
        button.onclick = () => listen(a.call.linkedid, mode, a.name);
        spy.append(button);
      }
      card.append(spy);
    }
  }
  return card;
}

function listItem(left, since, late = false) {
  const item = el("li");
  item.append(el("span", "", left));
  const timer = el("span", `timer${late ? " late" : ""}`, elapsed(since));
  timer.dataset.since = since || "";
  item.append(timer);
  item.title = left;
  return item;
}

function drawQueue() {
  const queue = parts.queue;
  if (!queue) return;
  $("queue-count").textContent = queue.waiting > queue.calls.length ? `共 ${queue.waiting} 人，显示最久 ${queue.calls.length} 人`
    : `${queue.waiting} 人`;
  const list = $("queue");
  if (!queue.calls.length) { list.replaceChildren(el("li", "muted", "无人排队")); return; }
  list.replaceChildren(...queue.calls.map((c) => {
    const item = listItem(callText(c), c.since, now() / 1000 - c.since > thresholds.wait);
    item.dataset.linkedid = c.linkedid;
    item.dataset.waitingSince = c.since;
    return item;
  }));
}

function drawSeats() {
  const list = $("seats");
  if (!seats.size) { list.replaceChildren(el("li", "muted", "无")); return; }
  list.replaceChildren(...[...seats.values()].map((s) => (s.call
    ? listItem(`${s.name} · ${s.call.caller || "未显示号码"}`, s.call.answered_at)
    : (() => { const item = el("li"); item.append(el("span", "", s.name), el("span", "muted", "空闲")); return item; })())));
}

function drawUnits() {
  const list = $("units");
  const units = parts.units || [];
  if (!units.length) { list.replaceChildren(el("li", "muted", "暂无")); return; }
  list.replaceChildren(...units.map((u) => {
    const item = el("li");
    item.append(el("span", "", u.name || u.unit_id), el("span", "", `通话 ${u.talking} · 等候 ${u.waiting}`));
    item.dataset.unit = u.unit_id;
    return item;
  }));
}

function tile(id, value, note = "", judge = "") {
  const box = $(id);
  box.querySelector("b").textContent = value;
  box.querySelector("span").textContent = note;
  box.className = `tile ${judge}`;
}

function drawFigures() {
  const { queue, today, window: w } = parts;
  if (queue) {
    tile("t-waiting", String(queue.waiting), "人", queue.waiting ? "" : "good");
    const longest = queue.longest_since;
    $("t-longest").dataset.since = longest || "";
    tile("t-longest", longest ? elapsed(longest) : "—", longest ? "" : "无人等候",
      longest && now() / 1000 - longest > thresholds.wait ? "bad" : "");
  }
  if (today) {
    tile("t-calls", String(today.asked), `接通 ${today.answered} · 放弃 ${today.abandoned}`);
    $("t-calls").title = `5秒内挂机 ${today.short_abandons}（不计入各率的分母）`;
    tile("t-rate15", percent(today.answer_rate_15s), `${today.answered_in_15s} / ${today.offered}`,
      today.answer_rate_15s === null ? "" : today.answer_rate_15s < thresholds.answer_rate ? "bad" : "good");
    tile("t-abandon", percent(today.abandon_rate), `接通率 ${percent(today.answer_rate)}`);
    tile("t-wait", seconds(today.avg_wait), `最长 ${seconds(today.max_wait)}`);
    tile("t-talk", seconds(today.avg_talk), `平均应答 ${seconds(today.avg_answer_wait)}`);
  }
  if (w) {
    $("t-window").querySelector("small").textContent = `近${w.minutes}分钟15秒接通率`;
    tile("t-window", percent(w.rate), `${w.answered_in_15s} / ${w.offered}${w.undecided ? ` · 待定 ${w.undecided}` : ""}`,
      w.rate === null || w.offered < thresholds.min_calls ? "" : w.rate < thresholds.answer_rate ? "bad" : "good");
  }
  if (parts.pbx) showPbx(parts.pbx);
}

function drawAlerts() {
  const box = $("alerts");
  box.hidden = !alerts.size;
  box.replaceChildren(...[...alerts.values()].map((a) => {
    const item = el("div", `alert ${a.severity}`, `⚠ ${a.title}`);
    item.dataset.alert = a.id;
    item.append(el("small", "", `${a.at.slice(11, 19)} 起`));
    item.title = `${a.kind} ${a.id}`;
    return item;
  }));
}

function showPbx(state) {
  $("pbx").textContent = PBX_STATES[state] || state;
  $("pbx").className = state;
}

function tickTimers() {
  clock();
  for (const node of document.querySelectorAll("[data-since]")) {
    const since = Number(node.dataset.since);
    if (!since) continue;
    const target = node.classList.contains("tile") ? node.querySelector("b") : node;
    target.textContent = elapsed(since);
  }
  for (const node of document.querySelectorAll("#queue [data-waiting-since]")) {
    node.querySelector(".timer").classList.toggle("late", now() / 1000 - Number(node.dataset.waitingSince) > thresholds.wait);
  }
}

const PARTS = ["queue", "today", "window", "units", "pbx"];

function take(m) {
  skew = m.now * 1000 - Date.now();
  seq = m.seq;
  for (const a of m.agents) agents.set(a.agent_id, a);
  for (const s of m.seats) seats.set(s.id, s);
  for (const part of PARTS) if (part in m) parts[part] = m[part]; // an update holds only the parts that changed
  if (m.type === "wallboard_update" && m.agents.length) redrawAgents(m.agents);
  if (m.seats.length) drawSeats();
  if ("queue" in m) drawQueue();
  if ("units" in m) drawUnits();
  drawFigures();
  $("feed").textContent = `实时 · ${new Intl.DateTimeFormat("zh-CN", { timeZone: zone, hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23" }).format(new Date(now()))} 更新`;
}

// -- the socket -------------------------------------------------------------------------------------

const handlers = {
  hello: (m) => showPbx(m.pbx),
  wallboard: (m) => {
    agents.clear();
    seats.clear();
    alerts.clear();
    parts = {};
    for (const a of m.alerts) alerts.set(a.id, a);
    thresholds = m.thresholds;
    take(m);
    drawAgents();
    drawSeats();
    drawAlerts();
  },
  wallboard_update: (m) => {
    if (seq === null || m.seq <= seq) return; // before the snapshot, or already in it
    if (m.seq !== seq + 1) { resnapshot(); return; } // one missed: this board is stale
    take(m);
  },
  alert: (m) => {
    if (m.state === "cleared") alerts.delete(m.id); else alerts.set(m.id, m);
    drawAlerts();
  },
  agent: () => {}, // the board's own updates carry the agents, with their calls
  link: (m) => showPbx(m.state),
  error: (m) => status(`错误：${ERRORS[m.error.code] || m.error.message}`, m.error.message),
};

function resnapshot() {
  seq = null; // what comes until the new socket's snapshot is not applied
  resync = true;
  socket.close();
}

function connect() {
  if (!token) return;
  seq = null;
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  socket.onopen = () => { retry = 500; socket.send(JSON.stringify({ type: "auth", token })); status(""); };
  socket.onmessage = (event) => { const m = JSON.parse(event.data); (handlers[m.type] || (() => {}))(m); };
  socket.onclose = (event) => {
    if (!token || event.code === 4401) return;
    if (resync) { resync = false; connect(); return; }
    $("feed").textContent = "大屏离线，重连中…";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

async function listen(linkedid, mode, name) {
  try {
    await api("POST", `/api/calls/${linkedid}/listen`, { mode });
    status(`${MODES[mode]}：${name} 的通话，请接听您的话机`);
  } catch (error) {
    status(`${MODES[mode]}失败：${error.message}`, error.raw || "");
  }
}

// -- starting ---------------------------------------------------------------------------------------

async function start() {
  const who = await api("GET", "/api/me");
  me = who.user;
  if (me.role === "agent") { location.replace("/"); return; } // an agent's place is the desk
  if (me.role === "integrator") {
    signOut();
    $("signin-error").textContent = "单位接口账号不能登录监控大屏";
    return;
  }
  zone = who.timezone || zone;
  $("signin").hidden = true;
  $("board").hidden = false;
  $("who").textContent = `${me.name} · ${me.role === "supervisor" ? "班长" : "管理员"}`;
  showPbx(who.pbx);
  clock();
  connect();
}

function signOut() {
  signOutOf(api, token, "board");
  token = null;
  if (socket) socket.close();
}

signInWith(api, (signedIn) => {
  token = signedIn;
  return start();
});
$("signout").onclick = signOut;
setInterval(tickTimers, 1000);
if (token) start().catch(() => signOut());
