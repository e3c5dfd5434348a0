// The deepgen page: every picture and number comes from the service's JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let current = null;

function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: body instanceof FormData ? {} : { "Content-Type": "application/json" },
    body: body instanceof FormData ? body : JSON.stringify(body),
  };
  return fetch(path, opts).then(async (r) => {
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    return r;
  });
}

function status(id, text, error) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", !!error);
}

// FNV-1a over the bytes of a picture: lets a test see that the picture changed.
function hashBytes(buf) {
  let h = 0x811c9dc5;
  const b = new Uint8Array(buf);
  for (let i = 0; i < b.length; i++) { h ^= b[i]; h = Math.imul(h, 0x01000193) >>> 0; }
  return h.toString(16);
}

async function showPng(img, response) {
  const buf = await response.arrayBuffer();
  const url = URL.createObjectURL(new Blob([buf], { type: "image/png" }));
  await new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; img.src = url; });
  img.dataset.hash = hashBytes(buf);
  img.dataset.version = String(Number(img.dataset.version || 0) + 1);
}

// ---- tabs and the model choice ----
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === b));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === b.dataset.tab));
  if (b.dataset.tab === "training") loadTraining();
}));

async function init() {
  try {
    const r = await api("/v1/models");
    models = (await r.json()).models;
  } catch (e) {
    status("g-status", "cannot list the models: " + e.message, true);
    return;
  }
  const sel = $("model");
  for (const m of models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.name + " (" + m.family + ")";
    sel.appendChild(o);
  }
  sel.addEventListener("change", () => choose(sel.value));
  if (models.length) await choose(models[0].name);
  document.body.dataset.ready = "1";
}

async function choose(name) {
  current = models.find((m) => m.name === name);
  const c = current.capabilities;
  $("model-info").textContent = current.summary + " · step " + current.step + " · density " + c.density +
    (current.threshold ? " · threshold " + current.threshold.score + " > " + current.threshold.value.toFixed(3) : "");
  $("g-class-l").hidden = !c.classes;
  const cls = $("g-class");
  cls.length = 1;
  for (let k = 0; k < c.classes; k++) {
    const o = document.createElement("option");
    o.value = String(k);
    o.textContent = String(k);
    cls.appendChild(o);
  }
  $("g-text-l").hidden = !c.text;
  $("g-mean-l").hidden = current.family !== "vae";
  $("g-seed").value = String(current.seed);
  $("l-seed").value = String(current.seed);
  buildSliders();
  $("a-table").hidden = true;
  if (document.querySelector(".tab.active").dataset.tab === "training") loadTraining();
  await draw();
}

// ---- gallery ----
async function draw() {
  const c = current.capabilities;
  const img = $("g-img");
  if (!c.sample) {
    img.hidden = true;
    status("g-status", current.name + " does not sample (" + current.family + ")");
    return;
  }
  img.hidden = false;
  const body = { n: Number($("g-n").value), seed: Number($("g-seed").value), format: "png" };
  if (c.classes && $("g-class").value !== "") body.class = Number($("g-class").value);
  if (c.text) body.text = $("g-text").value.trim() || "a thick 7 leaning left";
  if (current.family === "vae") body.mean = $("g-mean").checked;
  status("g-status", "drawing…");
  try {
    const t0 = performance.now();
    await showPng(img, await api("/v1/models/" + current.name + "/sample", body));
    img.dataset.seed = String(body.seed);
    status("g-status", body.n + " samples, seed " + body.seed + ", in " + Math.round(performance.now() - t0) + " ms");
  } catch (e) {
    status("g-status", e.message, true);
  }
}
$("g-draw").addEventListener("click", draw);
$("g-mean").addEventListener("change", draw);
$("g-reseed").addEventListener("click", () => {
  $("g-seed").value = String(Math.floor(Math.random() * 1e9));
  draw();
});

// ---- latent explorer ----
// A seeded N(0, 1) (or U[-1, 1]) start point, so a seed names a point.
function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let z = [];
const MAX_SLIDERS = 16;

function startPoint() {
  const [l, prior] = current.capabilities.latent;
  const rnd = mulberry32(Number($("l-seed").value) >>> 0);
  z = [];
  for (let i = 0; i < l; i++) {
    if (prior === "uniform") { z.push(2 * rnd() - 1); continue; }
    const u = Math.max(rnd(), 1e-12), v = rnd();
    z.push(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  }
}

function buildSliders() {
  const box = $("l-sliders");
  box.innerHTML = "";
  const lat = current.capabilities.latent;
  $("l-none").hidden = !!lat;
  $("l-img").hidden = !lat;
  if (!lat) return;
  startPoint();
  const bound = lat[1] === "uniform" ? 1 : 3;
  const k = Math.min(lat[0], MAX_SLIDERS);
  for (let i = 0; i < k; i++) {
    const name = document.createElement("span");
    name.textContent = "z" + i;
    const s = document.createElement("input");
    s.type = "range"; s.min = String(-bound); s.max = String(bound); s.step = "0.05";
    s.value = String(Math.max(-bound, Math.min(bound, z[i])));
    s.id = "z" + i;
    const val = document.createElement("span");
    val.textContent = Number(s.value).toFixed(2);
    s.addEventListener("input", () => { z[i] = Number(s.value); val.textContent = z[i].toFixed(2); decodeSoon(); });
    box.append(name, s, val);
  }
  decodeSoon();
}

// At most one decode in flight; the newest point is decoded when it returns.
let busy = false, again = false;
async function decodeSoon() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    do {
      again = false;
      const t0 = performance.now();
      const r = await api("/v1/models/" + current.name + "/decode", { z: [z], format: "png" });
      await showPng($("l-img"), r);
      status("l-status", "decoded in " + Math.round(performance.now() - t0) + " ms");
    } while (again);
  } catch (e) {
    status("l-status", e.message, true);
  } finally {
    busy = false;
  }
}
$("l-reset").addEventListener("click", buildSliders);

// ---- anomaly tab ----
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  scoreFiles(e.dataTransfer.files);
});
$("a-files").addEventListener("change", (e) => scoreFiles(e.target.files));

async function scoreFiles(files) {
  if (!files || !files.length) return;
  if (current.capabilities.density === "none") {
    status("a-status", current.name + " has no density to score", true);
    return;
  }
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  status("a-status", "scoring " + files.length + " file(s)…");
  try {
    const res = await (await api("/v1/models/" + current.name + "/score", form)).json();
    const body = $("a-table").querySelector("tbody");
    body.innerHTML = "";
    for (const x of res.examples) {
      const tr = document.createElement("tr");
      tr.dataset.logp = String(x.log_p_nats);
      const flag = x.anomalous === undefined ? "no threshold" : (x.anomalous ? "anomalous" : "normal");
      const cells = [x.name, x.log_p_nats.toFixed(2), x.bits_per_dim.toFixed(4),
        x.anomaly_score === undefined ? "" : x.anomaly_score.toFixed(2), flag];
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (i === 4 && x.anomalous !== undefined) td.className = x.anomalous ? "flag-yes" : "flag-no";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    $("a-table").hidden = false;
    $("a-table").dataset.count = String(res.examples.length);
    const t = res.threshold ? " (threshold: " + res.threshold.score + " > " + res.threshold.value.toFixed(3) + ")" : " (the run has no saved threshold: run deepgen detect)";
    status("a-status", res.n + " example(s), mean NLL " + res.mean_nll_nats.toFixed(2) + " nats" + t);
  } catch (e) {
    status("a-status", e.message, true);
  }
}

// ---- training curves and report ----
async function loadTraining() {
  const name = current.name;
  try {
    const m = await (await api("/v1/models/" + name + "/metrics")).json();
    plot(m.lines);
  } catch (e) {
    status("t-status", e.message, true);
  }
  try {
    $("t-report").textContent = await (await api("/v1/models/" + name + "/report")).text();
  } catch (e) {
    $("t-report").textContent = e.message;
  }
}

function plot(lines) {
  const cv = $("t-loss"), g = cv.getContext("2d");
  g.clearRect(0, 0, cv.width, cv.height);
  const series = { loss: [], val_nll: [] };
  for (const l of lines) {
    if (typeof l.loss === "number" && isFinite(l.loss)) series.loss.push([l.step, l.loss]);
    if (typeof l.val_nll === "number" && isFinite(l.val_nll)) series.val_nll.push([l.step, l.val_nll]);
  }
  const all = series.loss.concat(series.val_nll);
  if (!all.length) { status("t-status", "no training curve yet"); return; }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 40, W = cv.width - 2 * pad, H = cv.height - 2 * pad;
  const px = (x) => pad + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * W;
  const py = (y) => pad + H - (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5) * H;
  g.strokeStyle = "#999"; g.strokeRect(pad, pad, W, H);
  g.fillStyle = "#333"; g.font = "12px sans-serif";
  g.fillText(y1.toFixed(3), 2, pad + 4); g.fillText(y0.toFixed(3), 2, pad + H);
  g.fillText("step " + x0, pad, cv.height - 10); g.fillText("step " + x1, pad + W - 60, cv.height - 10);
  const colours = { loss: "#3b6fd8", val_nll: "#d8553b" };
  for (const [k, pts] of Object.entries(series)) {
    if (!pts.length) continue;
    g.strokeStyle = colours[k]; g.beginPath();
    pts.forEach(([x, y], i) => (i ? g.lineTo(px(x), py(y)) : g.moveTo(px(x), py(y))));
    g.stroke();
  }
  cv.dataset.points = String(all.length);
  status("t-status", "training loss (blue)" + (series.val_nll.length ? " and validation NLL (red)" : "") + ", " + series.loss.length + " points");
}

init();
