"use strict";
// The statistics page (/stats): trends of calls and cases by day, the category × district table, the hotspots
// found now and the alerts in force. Supervisors and admins see everything; an integrator its unit's (no alerts).
import { signInWith, signOutOf } from "/static/session.js";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cti-token");
let me = null;
const charts = {};
const KINDS = { spike: "突增", burst: "聚集", repeat_caller: "重复来电" };
const SEVERITIES = { critical: "严重", warning: "警告", info: "提示" };

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/session") signOut();
    const message = data?.error?.code === "unauthorized" && path === "/api/session" ? "工号或密码错误"
      : data?.error?.message || `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return data;
}

function day(offset) {
  const d = new Date(Date.now() + offset * 86400000);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function chart(id) {
  charts[id] = charts[id] || echarts.init($(id));
  return charts[id];
}

function drawTrend(callRows, caseRows) {
  const calls = Object.fromEntries(callRows.filter((r) => r.key !== "total").map((r) => [r.key, r]));
  const cases = Object.fromEntries(caseRows.filter((r) => r.key !== "total").map((r) => [r.key, r]));
  const days = [...new Set([...Object.keys(calls), ...Object.keys(cases)])].sort();
  chart("trend").setOption({
    tooltip: { trigger: "axis" },
    legend: { data: ["来电（人工）", "接通", "工单", "15秒接通率"] },
    grid: { left: 50, right: 60, top: 40, bottom: 30 },
    xAxis: { type: "category", data: days },
    yAxis: [{ type: "value", name: "数量", minInterval: 1 },
            { type: "value", name: "接通率", min: 0, max: 100, axisLabel: { formatter: "{value}%" } }],
    series: [
      { name: "来电（人工）", type: "line", smooth: true, data: days.map((d) => calls[d]?.offered ?? 0) },
      { name: "接通", type: "line", smooth: true, data: days.map((d) => calls[d]?.answered ?? 0) },
      { name: "工单", type: "line", smooth: true, data: days.map((d) => cases[d]?.cases ?? 0) },
      { name: "15秒接通率", type: "line", yAxisIndex: 1, lineStyle: { type: "dashed" },
        data: days.map((d) => calls[d]?.answer_rate_15s == null ? null : Math.round(calls[d].answer_rate_15s * 100)) },
    ],
  }, true);
}

function drawHeat(table) {
  const places = table.rows.map((r) => r.place).slice(0, 20).reverse();
  const data = [];
  let most = 1;
  table.rows.slice(0, 20).forEach((row) => table.categories.forEach((c, x) => {
    const n = row.counts[c.id] || 0;
    most = Math.max(most, n);
    data.push([x, places.indexOf(row.place), n]);
  }));
  chart("heat").setOption({
    tooltip: { formatter: (p) => `${places[p.value[1]]} · ${table.categories[p.value[0]].name}：${p.value[2]} 件` },
    grid: { left: 110, right: 30, top: 10, bottom: 70 },
    xAxis: { type: "category", data: table.categories.map((c) => c.name), splitArea: { show: true } },
    yAxis: { type: "category", data: places, splitArea: { show: true } },
    visualMap: { min: 0, max: most, calculable: true, orient: "horizontal", left: "center", bottom: 0,
                 inRange: { color: ["#f7fbff", "#fdd49e", "#fc8d59", "#d7301f", "#7f0000"] } },
    series: [{ type: "heatmap", data, label: { show: true }, emphasis: { itemStyle: { borderColor: "#333" } } }],
  }, true);
}

function showList(id, items, empty) {
  const list = $(id);
  list.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = empty;
    list.append(li);
    return;
  }
  for (const item of items) {
    const li = document.createElement("li");
    li.className = item.severity;
    li.textContent = `【${KINDS[item.kind] || item.kind}·${SEVERITIES[item.severity] || item.severity}】${item.title}`;
    const small = document.createElement("small");
    const since = item.details?.since || item.since || "";
    const words = item.details?.words?.length ? `主题词：${item.details.words.join("、")}　` : "";
    small.textContent = `${words}自 ${since.replace("T", " ").slice(0, 16)}`;
    li.append(small);
    list.append(li);
  }
}

async function load() {
  $("error").textContent = "";
  const range = `from=${$("from").value}&to=${$("to").value}`;
  try {
    const [callRows, caseRows, heat, hot] = await Promise.all([
      api("GET", `/api/stats/calls?by=day&${range}`), api("GET", `/api/stats?by=day&${range}`),
      api("GET", `/api/stats/heat?${range}`), api("GET", "/api/hotspots"),
    ]);
    drawTrend(callRows, caseRows);
    drawHeat(heat);
    showList("hotspots", hot.hotspots, "暂无热点");
    if (me.role === "integrator") {
      showList("alerts", [], "预警仅向班长、管理员显示");
    } else {
      showList("alerts", await api("GET", "/api/alerts"), "暂无预警");
    }
    document.body.dataset.loaded = "yes";
  } catch (error) {
    $("error").textContent = `加载失败：${error.message}`;
  }
}

function connect() {
  // alerts as they are raised and cleared (supervisors and admins get the WebSocket's alert messages)
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
  socket.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "alert") showList("alerts", await api("GET", "/api/alerts"), "暂无预警");
  };
  socket.onclose = (event) => { if (event.code !== 4401 && token) setTimeout(connect, 3000); };
}

async function start() {
  try {
    me = (await api("GET", "/api/me")).user;
  } catch {
    return;
  }
  if (me.role === "agent") {
    $("signin").hidden = false;
    $("signin-error").textContent = "统计分析仅供班长、管理员和单位接口账号使用";
    return;
  }
  $("signin").hidden = true;
  $("page").hidden = false;
  $("who").textContent = `${me.name}（${{ supervisor: "班长", admin: "管理员", integrator: "单位" }[me.role] || me.role}）`;
  await load();
  if (me.role !== "integrator") connect();
}

function signOut() {
  signOutOf(api, token, "page");
  token = null;
}

signInWith(api, (signedIn) => {
  token = signedIn;
  return start();
});
$("period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
$("signout").addEventListener("click", signOut);
window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
$("from").value = day(-29);
$("to").value = day(0);
if (token) start(); else $("signin").hidden = false;
