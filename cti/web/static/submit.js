// The public web form (/submit): POST /api/requests, no sign-in. The answer is the case number and what happens
// next; the form is emptied, so that nothing the citizen wrote stays on the screen of a shared phone.

const $ = (id) => document.getElementById(id);
const FIELDS = { content: "诉求内容", caller_number: "联系电话", caller_name: "姓名", location: "事发地点",
  category: "诉求类别" };

function problem(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function refused(status, error) {
  if (status === 429) return `提交过于频繁，请 ${Math.ceil((error.details || {}).retry_after / 60) || 1} 分钟后再试，或拨打 12345。`;
  const fields = (error.details || {}).fields || {};
  const named = Object.keys(fields).map((name) => FIELDS[name]).filter(Boolean);
  if (named.length) return `请检查：${named.join("、")}`;
  return "提交未成功，请稍后再试，或拨打 12345。";
}

async function send(event) {
  event.preventDefault();
  const number = $("caller_number").value.replace(/[\s-]/g, "");
  if (!$("content").value.trim()) return problem("请填写诉求内容。");
  if (!/^\+?[0-9]{5,20}$/.test(number)) return problem("请填写正确的联系电话，以便回访。");
  problem("");
  const body = {
    category: document.querySelector("input[name=category]:checked").value, content: $("content").value,
    caller_number: number, caller_name: $("caller_name").value.trim(), location: $("location").value.trim(),
    confidential: $("confidential").checked, website: $("website").value,
  };
  $("send").disabled = true;
  try {
    const response = await fetch("/api/requests", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) return problem(refused(response.status, data.error || {}));
    $("request").reset();
    $("reference").textContent = data.reference;
    $("next").textContent = data.next;
    $("request").hidden = true;
    $("done").hidden = false;
  } catch {
    problem("网络异常，请稍后再试，或拨打 12345。");
  } finally {
    $("send").disabled = false;
  }
}

$("request").addEventListener("submit", send);
$("request").addEventListener("input", () => problem(""));  // a problem said stays only until it is mended
$("again").addEventListener("click", () => {
  $("done").hidden = true;
  $("request").hidden = false;
});
