// The 12345 agent desk: sign in, ready/pause, the live screen-pop with the
// caller's earlier calls and cases, one-key transfers, the case form and the
// agent's tasks (missed calls to call back, callbacks left to a person).
const TREATMENTS = {
  merged: "直接合并 merged", remote_seat: "远端座席 remote seat", interconnected: "对接联通 interconnected",
  emergency: "话务转接 emergency", excluded: "暂不纳入 excluded", hotline: "12345", unknown: "未登记 unknown",
};
const STATES = {
  accepted: "已受理", dispatched: "已派单", in_progress: "办理中", replied: "已答复", callback: "回访中",
  closed: "已办结", archived: "已归档", merged: "已并单",
};
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cti-token");
let me = null;
let current = null; // the Linkedid on the pop
let socket = null;
let retry = 500;
let softphone = false; // the simulated PBX (cti demo) lets the desk answer a ringing call

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("messages").prepend(item);
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data.error ? `${data.error.code}: ${data.error.message}` : `HTTP ${response.status}`;
    if (response.status === 401 && path !== "/api/session") signOut();
    throw new Error(message);
  }
  return data;
}

function showAgent(status) {
  if (!status) return;
  $("agent-state").textContent = status.state;
  $("agent-reason").textContent = status.paused && status.reason ? `(${status.reason})` : "";
}

function showPop(call, state) {
  current = call.linkedid;
  $("pop").className = `card ${state}`;
  $("pop-title").textContent = state === "ringing" ? "来电振铃 · Ringing" : "通话中 · On call";
  $("pop-caller").textContent = call.caller_name ? `${call.caller_number} (${call.caller_name})` : call.caller_number;
  $("pop-dialled").textContent = call.dialled_number;
  $("pop-unit").textContent = call.unit || "—";
  $("pop-treatment").textContent = TREATMENTS[call.treatment] || call.treatment || "—";
  $("answer").hidden = !(softphone && state === "ringing");
  if (state === "ringing") $("case-caller").value = call.caller_number;
}

function clearPop(reason) {
  current = null;
  $("pop").className = "card idle";
  $("pop-title").textContent = `等待来电 · Waiting for calls${reason ? ` (${reason})` : ""}`;
  for (const id of ["pop-caller", "pop-dialled", "pop-unit", "pop-treatment"]) $(id).textContent = "—";
  $("history").innerHTML = '<li class="muted">—</li>';
  $("history-cases").innerHTML = '<li class="muted">—</li>';
  $("complete").disabled = $("cancel").disabled = true;
  $("answer").hidden = true;
}

function showHistory(calls) {
  const list = $("history");
  list.innerHTML = "";
  if (!calls.length) list.innerHTML = '<li class="muted">无 none</li>';
  for (const call of calls) {
    const item = document.createElement("li");
    const moved = call.transfers.map((t) => `${t.kind}→${t.target}`).join(", ");
    item.textContent = `${call.arrived_at.slice(0, 16).replace("T", " ")} 拨 ${call.dialled_number}` +
      `${call.unit ? ` ${call.unit}` : ""} · ${call.answered ? `接听 ${call.answered_by}` : "未接通"}${moved ? ` · ${moved}` : ""}`;
    if (call.recorded) {
      const play = document.createElement("button");
      play.textContent = "▶ 录音";
      play.dataset.play = call.linkedid;
      play.onclick = () => playRecording(call.linkedid);
      item.append(" ", play);
    }
    list.append(item);
  }
}

function showCases(cases) {
  const list = $("history-cases");
  list.innerHTML = cases.length ? "" : '<li class="muted">无 none</li>';
  for (const c of cases) {
    const item = document.createElement("li");
    item.dataset.case = c.id;
    item.textContent = `#${c.id} ${c.created_at.slice(0, 10)} ${c.category} · ${STATES[c.state] || c.state}` +
      `${c.unit ? ` · ${c.unit}` : ""} · ${c.content}`;
    list.append(item);
  }
}

function taskButton(label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.onclick = async () => {
    try { await action(); await loadTasks(); } catch (error) { log(`操作失败 ${error.message}`); }
  };
  return button;
}

async function loadTasks() {
  const tasks = await api("GET", "/api/tasks");
  const missed = $("missed");
  missed.innerHTML = tasks.missed_calls.length ? "" : '<li class="muted">无 none</li>';
  for (const m of tasks.missed_calls) {
    const item = document.createElement("li");
    item.dataset.missed = m.linkedid;
    item.append(`${m.at.slice(0, 16).replace("T", " ")} ${m.caller_number} → ${m.dialled_number} `,
      taskButton("已回拨 called back", () => api("POST", `/api/missed/${m.linkedid}`, { state: "called_back" })),
      taskButton("无法接通 unreachable", () => api("POST", `/api/missed/${m.linkedid}`, { state: "unreachable" })));
    missed.append(item);
  }
  const callbacks = $("callbacks");
  callbacks.innerHTML = tasks.callbacks.length ? "" : '<li class="muted">无 none</li>';
  for (const c of tasks.callbacks) {
    const item = document.createElement("li");
    item.dataset.case = c.id;
    const act = (action, body) => async () => {
      if (c.state === "replied") await api("POST", `/api/cases/${c.id}/actions/callback`, {});
      await api("POST", `/api/cases/${c.id}/actions/${action}`, body);
      log(`工单 #${c.id} 回访已记录`);
    };
    item.append(`#${c.id} ${c.caller_number} ${c.category_name} · ${c.reply} `,
      taskButton("满意", act("satisfaction", { satisfaction: "1" })),
      taskButton("基本满意", act("satisfaction", { satisfaction: "2" })),
      taskButton("不满意", act("satisfaction", { satisfaction: "3" })),
      taskButton("无法联系", act("unreachable", {})));
    callbacks.append(item);
  }
}

async function saveCase(event) {
  event.preventDefault();
  const body = {
    caller_number: $("case-caller").value, category: $("case-category").value, content: $("case-content").value,
    location: $("case-location").value, unit: $("case-unit").value, confidential: $("case-confidential").checked,
  };
  if (current) body.linkedid = current;
  try {
    const saved = await api("POST", "/api/cases", body);
    $("case-result").textContent = `工单 #${saved.id} 已保存 · ${STATES[saved.state] || saved.state}`;
    log(`工单 #${saved.id} saved (${saved.state})`);
    $("case-content").value = $("case-location").value = "";
    $("case-confidential").checked = false;
  } catch (error) { $("case-result").textContent = `保存失败 ${error.message}`; }
}

async function playRecording(linkedid) {
  // <audio src> cannot send the token: fetch the file, then play it from memory
  const response = await fetch(`/api/calls/${linkedid}/recording`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    log(`录音不可播放 ${data.error ? data.error.message : response.status}`);
    return;
  }
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(await response.blob());
  player.hidden = false;
  player.play().catch(() => {});
}

const handlers = {
  hello: (m) => { showAgent(m.agent); $("pbx").textContent = m.pbx; },
  agent: (m) => { if (me && m.status.agent_id === me.agent_id) showAgent(m.status); },
  link: (m) => { $("pbx").textContent = m.state; log(`PBX link ${m.state}`); },
  ringing: (m) => { showPop(m.call, "ringing"); log(`来电 ${m.call.caller_number} → ${m.call.dialled_number}`); },
  history: (m) => { if (m.linkedid === current) { showHistory(m.calls); showCases(m.cases || []); } },
  answered: (m) => { if (m.call) showPop(m.call, "answered"); log("已接听 answered"); },
  cleared: (m) => { if (m.linkedid === current) clearPop(m.outcome === "cancel" ? "已由他人接听" : m.outcome); },
  transferred: (m) => log(`已转接 ${m.kind} → ${m.target}`),
  transfer_failed: (m) => log(`转接未成功 ${m.kind} → ${m.target} (${m.result})`),
  recording: () => log("录音中 recording"),
  ended: (m) => { if (m.linkedid === current) clearPop("通话结束"); log(`通话结束 ${m.cause_text || ""}`); },
  error: (m) => log(`错误 ${m.error.message}`),
};

function connect() {
  if (!token) return;
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  socket.onopen = () => { retry = 500; socket.send(JSON.stringify({ type: "auth", token })); };
  socket.onmessage = (event) => { const m = JSON.parse(event.data); (handlers[m.type] || (() => {}))(m); };
  socket.onclose = (event) => {
    if (!token || event.code === 4401) return;
    $("pbx").textContent = "desk offline";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

async function startDesk() {
  const who = await api("GET", "/api/me");
  me = who.user;
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("who").textContent = `${me.name} (${me.id})`;
  showAgent(who.agent);
  $("pbx").textContent = who.pbx;
  softphone = who.softphone;
  const targets = await api("GET", "/api/targets");
  $("targets").innerHTML = "";
  for (const target of targets) {
    const button = document.createElement("button");
    button.textContent = target.kind === "emergency" ? target.id : target.name;
    button.title = target.name;
    button.dataset.target = target.id;
    button.className = target.kind;
    button.onclick = () => transfer(target.id);
    $("targets").append(button);
  }
  const units = await api("GET", "/api/units");
  $("case-unit").length = 1; // keep "not dispatched"
  for (const unit of units) {
    const option = document.createElement("option");
    option.value = unit.id;
    option.textContent = unit.name;
    $("case-unit").append(option);
  }
  loadTasks().catch((error) => log(`待办 ${error.message}`));
  connect();
}

async function transfer(target) {
  if (!current) { log("没有通话 no call to transfer"); return; }
  const kind = $("kind").value;
  try {
    await api("POST", `/api/calls/${current}/transfer`, { target, kind });
    log(`转接请求 ${kind} → ${target}`);
    $("complete").disabled = $("cancel").disabled = kind !== "attended";
  } catch (error) { log(`转接失败 ${error.message}`); }
}

function agentAction(path, body) {
  return async () => {
    try { await api("POST", `/api/agents/${me.agent_id}/${path}`, body && body()); }
    catch (error) { log(`操作失败 ${error.message}`); }
  };
}

function signOut() {
  if (token) api("DELETE", "/api/session").catch(() => {});
  token = null;
  sessionStorage.removeItem("cti-token");
  if (socket) socket.close();
  $("desk").hidden = true;
  $("signin").hidden = false;
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    const session = await api("POST", "/api/session", { user: $("user").value, password: $("password").value });
    token = session.token;
    sessionStorage.setItem("cti-token", token);
    await startDesk();
  } catch (error) { $("signin-error").textContent = error.message; }
});
$("login").onclick = agentAction("login");
$("logout").onclick = agentAction("logout");
$("ready").onclick = agentAction("ready");
$("pause").onclick = agentAction("pause", () => ({ reason: $("pause-reason").value }));
$("signout").onclick = signOut;
$("answer").onclick = async () => {
  try { await api("POST", `/api/calls/${current}/answer`); } catch (error) { log(`接听失败 ${error.message}`); }
};
$("complete").onclick = async () => { await api("POST", `/api/calls/${current}/transfer/complete`); log("转接完成"); };
$("cancel").onclick = async () => { await api("POST", `/api/calls/${current}/transfer/cancel`); log("转接取消"); };
$("case-form").addEventListener("submit", saveCase);
$("refresh-tasks").onclick = () => loadTasks().catch((error) => log(`待办 ${error.message}`));
if (token) startDesk().catch(() => signOut());
