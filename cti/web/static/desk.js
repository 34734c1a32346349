// The 12345 agent desk: sign in, ready/pause, the live screen-pop with the caller's earlier calls and
// cases, answer and hang up, one-key transfers, the case form, the lines outside the integration and
// the agent's tasks. Every word is Chinese (the API's codes stay in title attributes), and every time is
// the service's wall clock: the API's ISO times carry its offset and are shown as written, and the clock
// and the log use the zone GET /api/me names, whatever the browser's zone.

const TREATMENTS = {
  merged: "直接合并", remote_seat: "远端座席（双线并行）", interconnected: "对接联通", emergency: "紧急话务",
  excluded: "暂不纳入", hotline: "12345 热线", unknown: "未登记号码",
};
const CASE_STATES = {
  accepted: "已受理", dispatched: "已派单", in_progress: "办理中", replied: "已答复", callback: "回访中",
  closed: "已办结", archived: "已归档", merged: "已并单",
};
const CATEGORIES = { consultation: "咨询", request: "求助", complaint: "投诉", report: "举报", suggestion: "意见建议" };
const CHANNELS = { sms: "短信", web: "网页" }; // a call's case has no badge

function channelBadge(c) {
  // 短信 or 网页 before a case that did not come by phone
  if (!CHANNELS[c.channel]) return "";
  const badge = document.createElement("span");
  badge.className = `channel ${c.channel}`;
  badge.textContent = c.channel_name || CHANNELS[c.channel];
  return badge;
}
const AGENT_STATES = {
  logged_out: "未签入", ready: "就绪", paused: "暂停", in_use: "通话中", busy: "忙", ringing: "振铃中",
  on_hold: "保持中", unavailable: "话机离线", invalid: "话机无效", unknown: "未知",
};
const PHONE_STATES = {
  idle: "空闲", in_use: "通话中", busy: "忙", ringing: "振铃中", on_hold: "保持中", unavailable: "离线",
  invalid: "无效", unknown: "未知",
};
const PBX_STATES = { up: "已连接", down: "已断开" };
const KINDS = { blind: "盲转", attended: "咨询转", conference: "三方通话", redirect: "转移" };
// what came of a transfer (Asterisk's DIALSTATUS, lower case, or BlindTransfer's and AttendedTransfer's Result)
const RESULTS = {
  answered: "已接通", noanswer: "无人接听", busy: "占线", failed: "未接通", congestion: "线路拥塞",
  chanunavail: "线路不可用", cancel: "已取消", hangup: "已挂断", dontcall: "拒绝呼叫", invalidargs: "参数错误",
  Fail: "失败", Invalid: "目标无效", "Not Permitted": "不允许",
};
// why a pop left the agent's phone before it was answered (the leg's outcome)
const CLEARED = {
  cancel: "振铃已停止（他人接听或来电人已挂断）", noanswer: "未应答，振铃超时", busy: "话机忙", hangup: "振铃结束",
  gone: "与交换机重连后，来电已不在", chanunavail: "话机不可用", congestion: "线路拥塞",
};
// Q.850 hang-up causes (Asterisk's Cause / Cause-txt)
const Q850 = {
  0: "原因不明", 1: "空号", 2: "无路由", 3: "无路由", 16: "正常挂机", 17: "用户忙", 18: "无应答", 19: "振铃无人接听",
  20: "用户不在服务区", 21: "呼叫被拒绝", 22: "号码已更改", 27: "对方线路故障", 28: "号码格式错误", 29: "业务被拒绝",
  31: "正常结束", 34: "无可用线路", 38: "网络故障", 41: "临时故障", 42: "交换设备拥塞", 44: "线路不可用",
  47: "资源不可用", 50: "业务未开通", 58: "承载能力不可用", 65: "承载能力未实现", 88: "终端不兼容",
  102: "超时", 111: "协议错误", 127: "互通错误",
};
// the API's error codes, as the agent reads them ({"error": {"code", "message", "details"}})
const ERRORS = {
  unauthorized: "登录已失效，请重新登录",
  too_many_attempts: (e) => `登录失败次数过多，请 ${e.details.retry_after || "稍"} 秒后再试`,
  busy: "系统繁忙，请稍后再试",
  forbidden: "无权进行此操作",
  not_your_call: "这不是您接听的通话",
  no_such_call: "通话已结束或不存在",
  not_answered: "通话尚未接通，或您已不在通话中",
  not_ringing: "来电已不在振铃",
  unknown_target: "没有这个转接目标",
  no_softphone: "请在话机上接听",
  no_recording: "没有可播放的录音",
  no_such_agent: "没有这个坐席",
  no_such_case: "工单不存在",
  call_has_case: "这通来电已有工单",
  unknown_unit: "没有这个承办单位",
  illegal_transition: "工单当前状态不允许此操作",
  conflict: "工单已被他人修改，请刷新后重试",
  invalid: (e) => `填写有误：${fieldProblems(e.details.fields) || "请检查输入"}`,
  pbx_refused: "交换机拒绝了此操作",
  pbx_unavailable: "交换机未连接，请稍后再试",
  pbx_timeout: "交换机无响应，请稍后再试",
  bad_request: "请求格式有误",
  not_found: "请求的内容不存在",
  internal: "系统内部错误，请联系管理员",
};
const FIELDS = {
  caller_number: "来电号码", caller_name: "来电人姓名", content: "诉求内容", location: "事发地点", unit: "承办单位",
  category: "类别", confidential: "保密", reason: "暂停原因", linkedid: "通话", user: "工号", password: "密码",
  target: "转接目标", kind: "转接方式",
};

import { signInWith, signOutOf } from "/static/session.js";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cti-token");
let me = null;
let zone = "Asia/Shanghai"; // the service's, from GET /api/me
let current = null; // the Linkedid on the pop
let popState = "idle";
let lastRung = null; // the Linkedid of the last call logged as ringing
let answeredAt = null; // when this desk heard the answer (its own clock: a PC's skew cannot show), for the timer
let socket = null;
let retry = 500;
let softphone = false; // the simulated PBX (cti demo) lets the desk answer a ringing call
let units = []; // [{id, name}] of GET /api/units
const unitNames = new Map();
const targetNames = new Map();

class ApiFailure extends Error {
  constructor(code, text, raw, details) {
    super(text);
    this.code = code;
    this.raw = raw; // the API's own words, kept for the title attribute
    this.details = details || {};
  }
}

function fieldProblems(fields) {
  return Object.entries(fields || {}).map(([name, problem]) => `${FIELDS[name] || name}${hint(problem)}`).join("；");
}

function hint(problem) {
  let match;
  if (/^required/.test(problem)) return "必填";
  if ((match = /^at most (\d+) characters/.exec(problem))) return `最多 ${match[1]} 个字`;
  if ((match = /^at most (\d+) bytes/.exec(problem))) return "过长";
  if (/telephone number/.test(problem)) return "应为电话号码（数字，可带 +）";
  if (/^one of/.test(problem)) return "不在可选范围内";
  if (/control character/.test(problem)) return "含有不允许的控制字符";
  return "有误";
}

function failure(status, error, path) {
  if (!error) return new ApiFailure("http_error", `请求失败（HTTP ${status}）`, `HTTP ${status}`);
  let text = ERRORS[error.code];
  if (error.code === "unauthorized" && path === "/api/session") text = "工号或密码错误";
  if (typeof text === "function") text = text({ details: error.details || {} });
  return new ApiFailure(error.code, text || `操作未成功（${error.code}）`, `${error.code}: ${error.message}`,
    error.details);
}

// -- times: the service's wall clock -------------------------------------------------------------

function clockText(date, withSeconds = true) {
  return new Intl.DateTimeFormat("zh-CN", {
    timeZone: zone, hour: "2-digit", minute: "2-digit", ...(withSeconds ? { second: "2-digit" } : {}), hourCycle: "h23",
  }).format(date);
}

function thisYear() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric" }).format(new Date());
}

function wall(iso) {
  // an ISO time of the API (its offset the service's zone) as written: "11-21 09:00", the year when not this one
  if (!iso) return "—";
  const text = iso.slice(0, 16).replace("T", " ");
  return iso.slice(0, 4) === thisYear() ? text.slice(5) : text;
}

function duration(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, "0");
  const hours = Math.floor(seconds / 3600);
  return `${hours ? `${hours}:` : ""}${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
}

function tick() {
  $("clock").textContent = clockText(new Date(), false);
  if (popState === "answered" && answeredAt) $("pop-title").textContent = `通话中 · ${duration(Date.now() - answeredAt)}`;
}

// -- the log ---------------------------------------------------------------------------------------

function log(text, { title = "", error = false } = {}) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = clockText(new Date());
  item.append(time, text);
  if (title) item.title = title;
  if (error) item.className = "error";
  $("messages").prepend(item);
  while ($("messages").children.length > 200) $("messages").lastChild.remove();
}

function logFailure(what, error) {
  log(`${what}：${error.message}`, { title: error.raw || String(error), error: true });
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method, headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiFailure("network", "无法连接服务器", String(error));
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const problem = failure(response.status, data.error, path);
    if (response.status === 401 && path !== "/api/session") {
      signOut();
      $("signin-error").textContent = problem.message;
    }
    throw problem;
  }
  return data;
}

function labelled(element, text, code) {
  element.textContent = text;
  element.title = code || "";
}

// -- the agent --------------------------------------------------------------------------------------

function showAgent(status) {
  if (!status) return;
  labelled($("agent-state"), AGENT_STATES[status.state] || "未知", status.state);
  $("agent-reason").textContent = status.paused && status.reason ? `（${status.reason}）` : "";
  labelled($("phone-state"), PHONE_STATES[status.phone] || "未知", status.phone);
  $("agent-since").textContent = status.since ? `自 ${clockText(new Date(status.since * 1000), false)}` : "";
}

function showPbx(state) {
  labelled($("pbx"), PBX_STATES[state] || state, state);
}

// -- the pop ----------------------------------------------------------------------------------------

function showPop(call, state) {
  if (call.linkedid !== current) {
    // a new caller: the case form starts from what the PBX knows of them
    $("case-caller").value = call.caller_number || "";
    $("case-name").value = call.caller_name || "";
    $("history").innerHTML = '<li class="muted">查询中…</li>';
    $("history-cases").innerHTML = '<li class="muted">查询中…</li>';
    $("history-cases-of").textContent = "";
  }
  current = call.linkedid;
  popState = state;
  $("pop").className = `card ${state}`;
  if (state !== "answered") answeredAt = null;
  else if (answeredAt === null) answeredAt = Date.now();
  $("pop-title").textContent = state === "ringing" ? "来电振铃" : "通话中";
  $("pop-title").title = "";
  $("pop-caller").textContent = call.caller_number || "未显示号码";
  $("pop-name").textContent = call.caller_name || "—";
  $("pop-dialled").textContent = call.dialled_number || "—";
  $("pop-unit").textContent = call.unit || "—";
  labelled($("pop-treatment"), TREATMENTS[call.treatment] || "—", call.treatment);
  $("answer").hidden = !(softphone && state === "ringing");
  $("hangup").hidden = state !== "answered";
  tick();
}

function clearPop(reason, title = "", keepLists = false) {
  current = null;
  popState = "idle";
  answeredAt = null;
  $("pop").className = "card idle";
  $("pop-title").textContent = reason ? `等待来电 · ${reason}` : "等待来电";
  $("pop-title").title = title;
  for (const id of ["pop-caller", "pop-name", "pop-dialled", "pop-unit", "pop-treatment"]) labelled($(id), "—");
  if (!keepLists) { // an ended call's lists stay for the work after it; a pop taken elsewhere goes whole
    $("history").innerHTML = '<li class="muted">—</li>';
    $("history-cases").innerHTML = '<li class="muted">—</li>';
    $("history-cases-of").textContent = "";
  }
  $("complete").disabled = $("cancel").disabled = true;
  $("answer").hidden = $("hangup").hidden = true;
}

function showHistory(calls) {
  const list = $("history");
  list.innerHTML = calls.length ? "" : '<li class="muted">无</li>';
  for (const call of calls) {
    const item = document.createElement("li");
    const moved = call.transfers.map((t) => `${KINDS[t.kind] || "转接"}→${t.target}`).join("，");
    item.textContent = `${wall(call.arrived_at)} 拨打 ${call.dialled_number}${call.unit ? ` ${call.unit}` : ""} · ` +
      `${call.answered ? `${call.answered_by || "已接听"}接听` : "未接通"}${moved ? ` · ${moved}` : ""}`;
    item.title = item.textContent;
    if (call.recorded) {
      const play = document.createElement("button");
      play.textContent = "▶ 录音";
      play.dataset.play = call.linkedid;
      play.onclick = () => playRecording(call.linkedid);
      item.prepend(play, " ");
    }
    list.append(item);
  }
}

function showCases(cases, number) {
  const list = $("history-cases");
  $("history-cases-of").textContent = number ? `（${number}）` : "";
  list.innerHTML = cases.length ? "" : '<li class="muted">无</li>';
  for (const c of cases) {
    const item = document.createElement("li");
    item.dataset.case = c.id;
    const category = c.category_name || CATEGORIES[c.category] || c.category;
    const unit = c.unit ? ` · ${unitNames.get(c.unit) || c.unit}` : "";
    item.textContent = `#${c.id} ${wall(c.created_at)} ${category} · ${CASE_STATES[c.state] || c.state}${unit} · ` +
      c.content;
    item.title = item.textContent;
    item.prepend(channelBadge(c));
    list.append(item);
  }
}

async function loadCases(number) {
  showCases(await api("GET", `/api/cases?caller=${encodeURIComponent(number)}&limit=10`), number);
}

// -- tasks ------------------------------------------------------------------------------------------

function taskButton(label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.onclick = async () => {
    try { await action(); await loadTasks(); } catch (error) { logFailure("操作未成功", error); }
  };
  return button;
}

async function loadTasks() {
  const tasks = await api("GET", "/api/tasks");
  const missed = $("missed");
  missed.innerHTML = tasks.missed_calls.length ? "" : '<li class="muted">无</li>';
  for (const m of tasks.missed_calls) {
    const item = document.createElement("li");
    item.dataset.missed = m.linkedid;
    item.append(`${wall(m.at)} ${m.caller_number} 拨打 ${m.dialled_number}，等候 ${Math.round(m.waited)} 秒 `,
      taskButton("已回拨", () => api("POST", `/api/missed/${m.linkedid}`, { state: "called_back" })),
      taskButton("无法接通", () => api("POST", `/api/missed/${m.linkedid}`, { state: "unreachable" })));
    missed.append(item);
  }
  const callbacks = $("callbacks");
  callbacks.innerHTML = tasks.callbacks.length ? "" : '<li class="muted">无</li>';
  for (const c of tasks.callbacks) {
    const item = document.createElement("li");
    item.dataset.case = c.id;
    const act = (action, body) => async () => {
      if (c.state === "replied") await api("POST", `/api/cases/${c.id}/actions/callback`, {});
      await api("POST", `/api/cases/${c.id}/actions/${action}`, body);
      log(`工单 #${c.id} 回访已记录`);
    };
    item.append(`#${c.id} ${c.caller_number} ${c.category_name || CATEGORIES[c.category] || ""} · ${c.reply} `,
      taskButton("满意", act("satisfaction", { satisfaction: "1" })),
      taskButton("基本满意", act("satisfaction", { satisfaction: "2" })),
      taskButton("不满意", act("satisfaction", { satisfaction: "3" })),
      taskButton("无法联系", act("unreachable", {})));
    callbacks.append(item);
  }
  const requests = $("requests");
  requests.innerHTML = tasks.requests.length ? "" : '<li class="muted">无</li>';
  for (const c of tasks.requests) {
    // an SMS or web request: 认领 answers it (the 3-minute measure), then it is handled as any case
    const item = document.createElement("li");
    item.dataset.case = c.id;
    item.append(channelBadge(c), taskButton("认领", async () => {
      await api("POST", `/api/cases/${c.id}/actions/take`, {});
      log(`已认领工单 #${c.id}（工单号 ${c.reference}）`);
      $("case-caller").value = c.caller_number;
      await loadCases(c.caller_number);
    }), ` ${wall(c.created_at)} ${c.caller_number} · ${c.content}`);
    item.title = c.content;
    requests.append(item);
  }
}

// -- the case form ----------------------------------------------------------------------------------

function filterUnits() {
  // the unit list narrowed to the names (or ids) holding what was typed; one match is chosen at once
  const wanted = $("case-unit-search").value.trim().toLowerCase();
  const select = $("case-unit");
  const chosen = select.value;
  select.length = 1; // keep "not dispatched"
  const found = units.filter((u) => !wanted || u.name.toLowerCase().includes(wanted) || u.id.includes(wanted));
  for (const unit of found) {
    const option = new Option(unit.name, unit.id);
    option.title = unit.id;
    select.append(option);
  }
  select.value = found.length === 1 && wanted ? found[0].id : (found.some((u) => u.id === chosen) ? chosen : "");
}

function resetCase() {
  $("case-content").value = $("case-location").value = $("case-unit-search").value = "";
  $("case-confidential").checked = false;
  document.querySelector("input[name=category][value=consultation]").checked = true;
  filterUnits();
  $("case-unit").value = "";
  kbChosen.clear();
  showChosen();
}

async function saveCase(event) {
  event.preventDefault();
  const number = $("case-caller").value.trim();
  const body = {
    caller_number: number, caller_name: $("case-name").value.trim(),
    category: document.querySelector("input[name=category]:checked").value, content: $("case-content").value,
    location: $("case-location").value, unit: $("case-unit").value, confidential: $("case-confidential").checked,
  };
  if (current) body.linkedid = current;
  const result = $("case-result");
  try {
    const saved = await api("POST", "/api/cases", body);
    const unit = saved.unit ? `，承办：${unitNames.get(saved.unit) || saved.unit}` : "";
    result.textContent = `工单 #${saved.id} 已保存 · ${CASE_STATES[saved.state] || saved.state}${unit}`;
    result.className = "ok";
    result.title = "";
    log(`工单 #${saved.id} 已保存（${CASE_STATES[saved.state] || saved.state}）`);
    await recordArticles(saved.id);
    resetCase();
    await loadCases(saved.caller_number || number).catch((error) => logFailure("历史工单", error));
  } catch (error) {
    result.textContent = `保存失败：${error.message}`;
    result.className = "error";
    result.title = error.raw || "";
  }
}

// -- recordings -------------------------------------------------------------------------------------

async function playRecording(linkedid) {
  // <audio src> cannot send the token: fetch the file, then play it from memory
  const response = await fetch(`/api/calls/${linkedid}/recording`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    logFailure("录音不可播放", failure(response.status, data.error, ""));
    return;
  }
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(await response.blob());
  player.hidden = false;
  player.play().catch(() => {});
}

// -- the knowledge base ------------------------------------------------------------------------------
// The dialled unit's articles as a call rings, suggestions from what the agent types (debounced), a search box.
// title_html and snippet_html come escaped from the API with only <mark> added: every other text of an
// article goes in as textContent.

const KB_WAIT = 400; // ms of no typing before the suggestions are asked for
let kbTimer = null;
let kbAsked = 0; // the latest request: an older answer arriving late is dropped
let kbOpen = null; // the article read
const kbChosen = new Map(); // id -> title: the articles to record in the case when it is saved

function showArticles(hits, heading, empty) {
  $("kb-of").textContent = heading;
  $("kb-article").hidden = true;
  const list = $("kb-list");
  list.hidden = false;
  list.replaceChildren();
  if (!hits.length) {
    list.innerHTML = `<li class="muted">${empty}</li>`;
    return;
  }
  for (const hit of hits) {
    const item = document.createElement("li");
    item.dataset.article = hit.id;
    const title = document.createElement("span");
    title.className = "kb-title";
    title.innerHTML = hit.title_html; // escaped by cti, the matched words in <mark>
    const piece = document.createElement("span");
    piece.className = "kb-snippet";
    piece.innerHTML = hit.snippet_html;
    item.append(title, piece);
    item.title = hit.unit ? unitNames.get(hit.unit) || hit.unit : "12345 热线";
    item.onclick = () => readArticle(hit.id).catch((error) => logFailure("知识库", error));
    list.append(item);
  }
}

async function askArticles(query, heading, empty) {
  const asked = ++kbAsked;
  const hits = await api("GET", `/api/kb/articles?${query}`);
  if (asked === kbAsked) showArticles(hits, heading, empty);
}

function unitArticles(call) {
  if (!call.unit_id) return;
  askArticles(`unit=${encodeURIComponent(call.unit_id)}&limit=8`, `· ${call.unit || call.unit_id}`,
    "该单位暂无知识").catch((error) => logFailure("知识库", error));
}

function suggest(text, heading) {
  clearTimeout(kbTimer);
  const query = text.trim().slice(-200); // the latest words say most of what the caller asks now
  if (!query) return;
  kbTimer = setTimeout(() => askArticles(`q=${encodeURIComponent(query)}&limit=6`, heading, "没有找到相关知识")
    .catch((error) => logFailure("知识库", error)), KB_WAIT);
}

async function readArticle(id) {
  const article = await api("GET", `/api/kb/articles/${id}`);
  kbOpen = article;
  $("kb-title").textContent = article.title;
  const unit = article.unit ? unitNames.get(article.unit) || article.unit : "12345 热线";
  const valid = article.valid_to ? ` · 有效期至 ${article.valid_to}` : "";
  $("kb-meta").textContent = `${unit} · 第 ${article.version} 版 · ${wall(article.updated_at)} 更新${valid}`;
  $("kb-body").textContent = article.body;
  $("kb-list").hidden = true;
  $("kb-article").hidden = false;
  $("kb-use").disabled = kbChosen.has(article.id);
  $("kb-article").scrollTop = 0;
}

function showChosen() {
  const line = $("case-articles");
  line.hidden = kbChosen.size === 0;
  line.replaceChildren(line.firstElementChild || document.createElement("span"));
  for (const [id, title] of kbChosen) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.dataset.article = id;
    const drop = document.createElement("button");
    drop.type = "button";
    drop.textContent = "×";
    drop.title = "不引用";
    drop.onclick = () => { kbChosen.delete(id); showChosen(); };
    chip.append(title, drop);
    line.append(chip);
  }
}

function useArticle() {
  if (!kbOpen) return;
  kbChosen.set(kbOpen.id, kbOpen.title);
  $("kb-use").disabled = true;
  showChosen();
  log(`已引用知识：${kbOpen.title}`);
}

async function recordArticles(caseId) {
  // the case exists now: each article used goes into its timeline
  for (const [id, title] of kbChosen) {
    try { await api("POST", `/api/cases/${caseId}/articles`, { article: id }); }
    catch (error) { logFailure(`引用知识“${title}”未记录`, error); }
  }
  kbChosen.clear();
  showChosen();
}

// -- screen-pops ------------------------------------------------------------------------------------

function causeText(m) {
  const shutDown = (m.cause_text || "").includes("Asterisk shut down");
  const known = m.cause === null || m.cause === undefined ? "" : Q850[m.cause];
  return `${known || (m.cause_text ? "其他原因" : "原因不明")}${shutDown ? "（交换机重启）" : ""}`;
}

function targetLabel(id) {
  return targetNames.has(id) && targetNames.get(id) !== id ? `${id} ${targetNames.get(id)}` : id;
}

const handlers = {
  hello: (m) => { showAgent(m.agent); showPbx(m.pbx); },
  agent: (m) => { if (me && m.status.agent_id === me.agent_id) showAgent(m.status); },
  link: (m) => { showPbx(m.state); log(`交换机${PBX_STATES[m.state] || m.state}`, { error: m.state === "down" }); },
  ringing: (m) => {
    showPop(m.call, "ringing");
    if (m.linkedid === lastRung) return; // the queue rings the phone again for the same call: logged once
    lastRung = m.linkedid;
    unitArticles(m.call);
    log(`来电 ${m.call.caller_number || "未显示号码"} 拨打 ${m.call.dialled_number}`);
  },
  history: (m) => {
    if (m.linkedid !== current) return;
    showHistory(m.calls);
    showCases(m.cases || [], $("case-caller").value);
  },
  answered: (m) => {
    if (m.call) showPop(m.call, "answered");
    log("已接听");
  },
  cleared: (m) => {
    if (m.linkedid === current) clearPop(CLEARED[m.outcome] || "振铃结束", m.outcome);
  },
  transferred: (m) => {
    log(`已转接（${KINDS[m.kind] || "转接"}）→ ${targetLabel(m.target)}`, { title: `${m.kind} ${m.target}` });
    if (m.linkedid === current && m.kind === "blind") {
      $("pop-title").textContent = `已盲转 → ${m.target}`;
      popState = "transferred";
      $("hangup").hidden = true;
    }
  },
  transfer_failed: (m) => log(`转接未成功（${KINDS[m.kind] || "转接"} → ${targetLabel(m.target)}）：` +
    `${RESULTS[m.result] || "未接通"}`, { title: `${m.kind} ${m.target}: ${m.result}`, error: true }),
  recording: () => log("通话录音中"),
  ended: (m) => {
    const why = causeText(m);
    const title = `Q.850 ${m.cause ?? "?"} ${m.cause_text || ""}`.trim();
    if (m.linkedid === current) clearPop(`通话结束（${why}）`, title, true);
    log(`通话结束：${why}`, { title });
  },
  alert: (m) => log(`${m.state === "cleared" ? "预警解除" : "预警"}：${m.title}`,
    { title: `${m.kind} ${m.id}`, error: m.state !== "cleared" }),
  error: (m) => log(`错误：${failure(0, m.error, "").message}`, { title: `${m.error.code}: ${m.error.message}`, error: true }),
};

function connect() {
  if (!token) return;
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  socket.onopen = () => { retry = 500; socket.send(JSON.stringify({ type: "auth", token })); };
  socket.onmessage = (event) => { const m = JSON.parse(event.data); (handlers[m.type] || (() => {}))(m); };
  socket.onclose = (event) => {
    if (!token || event.code === 4401) return;
    labelled($("pbx"), "坐席台离线，重连中…", "desk offline");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}

// -- starting the desk ------------------------------------------------------------------------------

async function startDesk() {
  const who = await api("GET", "/api/me");
  me = who.user;
  if (me.role === "supervisor" || me.role === "admin") { location.replace("/wallboard"); return; } // their board
  if (me.role === "integrator") {
    signOut();
    $("signin-error").textContent = "单位接口账号不能登录坐席台";
    return;
  }
  zone = who.timezone || zone;
  $("clock").title = `服务时区 ${zone}`;
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("who").textContent = `${me.name} · 工号 ${me.id}`;
  showAgent(who.agent);
  showPbx(who.pbx);
  softphone = who.softphone;
  const reasons = who.pause_reasons && who.pause_reasons.length ? who.pause_reasons : ["小休"];
  $("pause-reason").replaceChildren(...reasons.map((r) => new Option(r, r)));
  tick();
  const [targets, catalogue, guidance] = await Promise.all([
    api("GET", "/api/targets"), api("GET", "/api/units"), api("GET", "/api/guidance")]);
  $("targets").innerHTML = "";
  for (const target of targets) {
    targetNames.set(target.id, target.name);
    const button = document.createElement("button");
    button.type = "button";
    if (target.kind === "emergency") {
      const name = document.createElement("small");
      name.textContent = target.name;
      button.append(target.id, " ", name);
    } else {
      button.textContent = target.name;
    }
    button.title = `${target.id} ${target.name}`;
    button.dataset.target = target.id;
    button.className = target.kind;
    button.onclick = () => transfer(target.id);
    $("targets").append(button);
  }
  units = catalogue.sort((a, b) => a.name.localeCompare(b.name, "zh-CN")); // 拼音 order, as a person looks
  for (const unit of units) unitNames.set(unit.id, unit.name);
  filterUnits();
  const lines = $("guidance-list");
  lines.innerHTML = guidance.length ? "" : '<dt class="muted">无</dt>';
  for (const line of guidance) {
    const number = document.createElement("dt");
    number.textContent = line.numbers.replaceAll(", ", " / ");
    const tell = document.createElement("dd");
    tell.textContent = line.guidance || line.unit;
    tell.title = line.unit;
    lines.append(number, tell);
  }
  loadTasks().catch((error) => logFailure("待办", error));
  connect();
}

async function transfer(target) {
  if (!current) { log("没有可转接的通话", { error: true }); return; }
  const kind = document.querySelector("input[name=kind]:checked").value;
  try {
    await api("POST", `/api/calls/${current}/transfer`, { target, kind });
    log(`转接请求：${KINDS[kind]} → ${targetLabel(target)}`);
    $("complete").disabled = $("cancel").disabled = kind !== "attended";
  } catch (error) { logFailure("转接失败", error); }
}

function agentAction(path, body) {
  return async () => {
    try { await api("POST", `/api/agents/${me.agent_id}/${path}`, body && body()); }
    catch (error) { logFailure("操作未成功", error); }
  };
}

function callAction(path, done, what) {
  return async () => {
    if (!current) return;
    try { await api("POST", `/api/calls/${current}/${path}`); if (done) log(done); }
    catch (error) { logFailure(what, error); }
  };
}

function signOut() {
  signOutOf(api, token, "desk");
  token = null;
  if (socket) socket.close();
}

signInWith(api, (signedIn) => {
  token = signedIn;
  return startDesk();
});
$("login").onclick = agentAction("login");
$("logout").onclick = agentAction("logout");
$("ready").onclick = agentAction("ready");
$("pause").onclick = agentAction("pause", () => ({ reason: $("pause-reason").value }));
$("signout").onclick = signOut;
$("answer").onclick = callAction("answer", "", "接听失败");
$("hangup").onclick = callAction("hangup", "已挂断", "挂断失败");
$("complete").onclick = callAction("transfer/complete", "转接完成", "完成转接失败");
$("cancel").onclick = callAction("transfer/cancel", "转接已取消", "取消转接失败");
$("case-form").addEventListener("submit", saveCase);
$("case-form").addEventListener("reset", (event) => { event.preventDefault(); resetCase(); });
$("case-unit-search").addEventListener("input", filterUnits);
$("case-content").addEventListener("input", () => suggest($("case-content").value, "· 与诉求相关"));
$("kb-search").addEventListener("input", () => suggest($("kb-search").value, "· 查找结果"));
$("kb-back").onclick = () => { $("kb-article").hidden = true; $("kb-list").hidden = false; };
$("kb-use").onclick = useArticle;
$("case-unit-search").addEventListener("keydown", (event) => {
  if (event.key === "Enter") { // choose the first match instead of sending the form
    event.preventDefault();
    const select = $("case-unit");
    if (!select.value && select.length > 1) select.selectedIndex = 1;
  } else if (event.key === "ArrowDown") {
    event.preventDefault();
    $("case-unit").focus();
  }
});
$("refresh-tasks").onclick = () => loadTasks().catch((error) => logFailure("待办", error));
setInterval(tick, 1000);
if (token) startDesk().catch(() => signOut());
