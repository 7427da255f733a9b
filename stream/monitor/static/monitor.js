// signstream monitor page: server-sent events in, plain canvas drawing out (no library, nothing
// loaded from elsewhere). Every buffer is a fixed-size ring over the last history_s seconds, so the
// page holds the same memory after an hour as after a minute. Times are the sensors' clock (seconds
// since acquisition started), as on the wire; the plots scroll with the data and stop when it stops.
"use strict";

const COLORS = { raw: "rgba(120,160,210,0.55)", envelope: "#ffd166", energy: "#ff9f43", motion: "#4dd0e1",
                 axis: ["#ff6b6b", "#51cf66", "#4dabf7"], grid: "#2b3642", text: "#8b98a8", label: "#e6edf3",
                 segment: "rgba(255,255,255,0.16)", accepted: "rgba(63,185,80,0.55)", rejected: "rgba(210,153,34,0.55)",
                 gap: "rgba(248,81,73,0.35)", sensors: ["#ff6b6b", "#ffa94d", "#ffd43b", "#69db7c", "#4dabf7", "#b197fc",
                 "#f783ac", "#63e6be"] };
const LEFT = 150;   // px for lane labels
const MAX_SIGNS = 200;

class Ring {
  // times (float64) plus any number of value columns, in one ring of `capacity` rows.
  constructor(capacity, widths) {
    this.capacity = capacity;
    this.t = new Float64Array(capacity);
    this.columns = {};
    for (const [name, width] of Object.entries(widths)) this.columns[name] = { width, data: new Float32Array(capacity * Math.max(width, 1)) };
    this.start = 0;
    this.length = 0;
  }
  push(time, values) {  // values: name -> (flat list, row offset)
    const row = (this.start + this.length) % this.capacity;
    if (this.length < this.capacity) this.length += 1; else this.start = (this.start + 1) % this.capacity;
    this.t[row] = time;
    for (const [name, [flat, offset]] of Object.entries(values)) {
      const column = this.columns[name];
      for (let i = 0; i < column.width; i++) {
        const value = flat[offset * column.width + i];
        column.data[row * column.width + i] = value === null || value === undefined ? NaN : value;
      }
    }
  }
  index(i) { return (this.start + i) % this.capacity; }
  time(i) { return this.t[this.index(i)]; }
  value(name, i, channel) { const column = this.columns[name]; return column.data[this.index(i) * column.width + channel]; }
  last() { return this.length ? this.time(this.length - 1) : NaN; }
  firstAtOrAfter(time) {  // binary search over the ring's increasing times
    let low = 0, high = this.length;
    while (low < high) { const middle = (low + high) >> 1; if (this.time(middle) < time) low = middle + 1; else high = middle; }
    return low;
  }
}

const page = {
  hello: null, frames: null, model: null, session: null, epoch: null,
  segments: [], gaps: [], predictions: [], events: [], health: null, connected: false, dirty: true,
  stats: { messages: 0, traces: 0, framesReceived: 0, predictions: 0, events: 0, hellos: 0, lastCaption: "",
           drawn: { emg: 0, imu: 0, segmentation: 0 }, health: {} },
};
window.monitorStats = page.stats;

function reset(hello) {
  page.hello = hello;
  page.predictions = []; page.events = [];
  resetTraces();
  document.getElementById("emg-unit").textContent = `(${hello.emg_unit})`;
}

function resetTraces() {  // the rings, for a new acquisition run (its clock starts again)
  const hello = page.hello;
  const frameCapacity = Math.ceil(hello.history_s / hello.frame_period_s * 1.25) + 64;
  const modelCapacity = Math.ceil(hello.history_s * hello.model_rate_hz * 1.25) + 64;
  const emg = hello.emg_channels.length;
  page.frames = new Ring(frameCapacity, { emg_min: emg, emg_max: emg, acc: hello.acc_channels.length, gyro: hello.gyro_sensors.length });
  page.model = new Ring(modelCapacity, { envelope: emg, energy: 1, motion: 1, emg_on: 1, emg_off: 1, active: 1 });
  page.segments = []; page.gaps = [];
  page.session = null; page.epoch = null;
}

function onTraces(update) {
  if (!page.hello) return;
  if (update.session !== page.session || update.epoch !== page.epoch) {
    resetTraces();
    page.session = update.session; page.epoch = update.epoch;
  }
  for (let i = 0; i < update.t.length; i++)
    page.frames.push(update.t[i], { emg_min: [update.emg_min, i], emg_max: [update.emg_max, i], acc: [update.acc, i], gyro: [update.gyro, i] });
  for (let i = 0; i < update.model_t.length; i++)
    page.model.push(update.model_t[i], { envelope: [update.envelope, i], energy: [update.energy, i], motion: [update.motion, i],
                                         emg_on: [update.emg_on, i], emg_off: [update.emg_off, i], active: [update.active.map(Number), i] });
  page.segments.push(...update.segments);
  page.gaps.push(...update.gaps);
  const oldest = page.frames.last() - page.hello.history_s - 1;
  page.segments = page.segments.filter(segment => segment[1] >= oldest);
  page.gaps = page.gaps.filter(gap => gap[1] >= oldest);
  page.stats.traces += 1;
  page.stats.framesReceived += update.t.length;
  page.dirty = true;
}

function pretty(label) { return String(label).replace(/_/g, " "); }

function onPrediction(prediction) {
  page.predictions.push(prediction);
  if (page.predictions.length > MAX_SIGNS) page.predictions.shift();
  page.stats.predictions += 1;
  const box = document.getElementById("prediction");
  box.classList.remove("muted");
  box.textContent = `${pretty(prediction.label)} ${(100 * prediction.confidence).toFixed(0)} %` +
    `  (${prediction.start_time_s.toFixed(2)}-${prediction.end_time_s.toFixed(2)} s${prediction.forced ? ", cut at max length" : ""})`;
  const order = prediction.probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
  const names = prediction.labels || [];
  const bars = document.getElementById("probabilities");
  bars.replaceChildren(...order.map(([p, i]) => {
    const row = document.createElement("div"); row.className = "bar";
    const name = document.createElement("span"); name.className = "name"; name.textContent = pretty(names[i] ?? `class ${i}`);
    const track = document.createElement("span"); const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`; track.appendChild(fill);
    const value = document.createElement("span"); value.textContent = `${(100 * p).toFixed(0)} %`;
    row.append(name, track, value); return row;
  }));
  page.dirty = true;
}

function onEvent(event) {
  page.events.push(event);
  if (page.events.length > MAX_SIGNS) page.events.shift();
  page.stats.events += 1;
  page.stats.lastCaption = event.label;
  const caption = document.getElementById("caption");
  caption.textContent = pretty(event.label);
  document.getElementById("caption-confidence").textContent =
    `confidence ${(100 * event.confidence).toFixed(0)} %, ${event.latency_ms.toFixed(0)} ms after the sign ended`;
  const history = document.getElementById("caption-history");
  history.replaceChildren(...page.events.slice(-12, -1).reverse().map(previous => {
    const span = document.createElement("span"); span.textContent = `${pretty(previous.label)} ${(100 * previous.confidence).toFixed(0)}%`;
    return span;
  }));
  page.dirty = true;
}

function onHealth(health) {
  page.health = health;
  const cards = document.getElementById("health");
  const open = new Set([...cards.querySelectorAll("details[open]")].map(element => element.dataset.daemon));
  cards.replaceChildren(...health.daemons.map(daemon => card(daemon, open.has(daemon.daemon))));
  for (const daemon of health.daemons) page.stats.health[daemon.daemon] = daemon.state;
  page.stats.stream = health.stream.state;
  renderBanner();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function card(daemon, open) {
  const node = element("div", `card ${daemon.state.replace(" ", "-")}`);
  node.dataset.daemon = daemon.daemon;
  const title = element("div", "title");
  title.append(element("span", "", daemon.daemon), element("span", "state", daemon.state));
  node.appendChild(title);
  if (daemon.age_s === null) { node.appendChild(element("div", "facts", "no status heard yet")); return node; }
  const facts = [`heard ${daemon.age_s.toFixed(1)} s ago`, `pid ${daemon.pid}`, `up ${formatSeconds(daemon.uptime_s)}`];
  if (daemon.restarts) facts.push(`${daemon.restarts} restart${daemon.restarts > 1 ? "s" : ""}`);
  if (daemon.info.model_id) facts.push(`model ${daemon.info.model_id}`);
  if (daemon.info.source) facts.push(`source ${daemon.info.source}`);
  node.appendChild(element("div", "facts", facts.join(" · ")));
  const counters = element("div", "counters");
  for (const name of new Set([...daemon.headline, ...daemon.problems])) {
    const problem = daemon.problems.includes(name);
    counters.append(element("span", problem ? "problem" : "", name), element("span", problem ? "problem" : "", formatNumber(daemon.counters[name])));
  }
  node.appendChild(counters);
  const details = element("details");
  details.dataset.daemon = daemon.daemon;
  details.open = open;
  details.appendChild(element("summary", "", "all counters"));
  for (const [name, value] of Object.entries(daemon.counters).sort()) {
    const row = element("div"); row.append(element("span", "", name), element("span", "", formatNumber(value))); details.appendChild(row);
  }
  node.appendChild(details);
  return node;
}

function formatNumber(value) { return Number.isInteger(value) ? String(value) : Number(value).toPrecision(3); }
function formatSeconds(seconds) {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function renderBanner() {
  const problems = [];
  if (!page.connected) problems.push(["bad", "monitor connection lost: reconnecting"]);
  const health = page.health;
  if (health) {
    for (const daemon of health.daemons) {
      if (daemon.state === "gone") problems.push(["bad", `${daemon.daemon} is gone: no heartbeat for ${daemon.age_s.toFixed(1)} s`]);
      else if (daemon.state === "stopped") problems.push(["bad", `${daemon.daemon} stopped`]);
    }
    const stream = health.stream;
    if (stream.state === "no frames") problems.push(["bad", `no frames for ${stream.frames_age_s.toFixed(1)} s (stream-acquire ${stream.acquire_state})`]);
    if (stream.frames_missed) problems.push(["warn", `${stream.frames_missed} frames lost on the way to the monitor in ${stream.frame_gaps} gaps`]);
  }
  const banner = document.getElementById("banner");
  banner.replaceChildren(...problems.map(([level, text]) => element("div", level, text)));
  page.stats.banner = problems.map(problem => problem[1]);
}

// ------------------------------------------------------------------------------------ drawing

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  return [context, width, height];
}

function view(width) {
  const end = page.frames.last(), span = page.hello.history_s;
  return { start: end - span, end, x: time => LEFT + (time - (end - span)) / span * (width - LEFT - 8) };
}

function shadeSpans(context, range, top, bottom, withLabels) {
  context.fillStyle = COLORS.gap;
  for (const [start, end] of page.gaps) context.fillRect(range.x(start), top, Math.max(2, range.x(end) - range.x(start)), bottom - top);
  const accepted = new Set(page.events.filter(event => event.source_session === page.session).map(event => event.prediction_seq));
  context.font = "12px system-ui, sans-serif";
  for (const prediction of page.predictions) {
    if (prediction.source_session !== page.session || prediction.end_time_s < range.start) continue;
    const left = range.x(prediction.start_time_s), right = range.x(prediction.end_time_s);
    const good = accepted.has(prediction.seq);
    context.fillStyle = good ? COLORS.accepted : COLORS.rejected;
    context.fillRect(left, top, Math.max(2, right - left), 4);
    if (withLabels) {
      context.fillStyle = good ? "#7ee787" : "#e3b341";
      context.fillText(`${pretty(prediction.label)} ${(100 * prediction.confidence).toFixed(0)}%`, Math.max(LEFT, left), top + 16);
    }
  }
}

function laneLabel(context, text, detail, y) {
  context.fillStyle = COLORS.label; context.font = "12px system-ui, sans-serif";
  context.fillText(text, 6, y + 14);
  if (detail) { context.fillStyle = COLORS.text; context.fillText(detail, 6, y + 29); }
}

function visibleRange(ring, range) { return [ring.firstAtOrAfter(range.start), ring.length]; }

function drawEmg() {
  const [context, width, height] = prepare(document.getElementById("emg"));
  const frames = page.frames, model = page.model, channels = page.hello.emg_channels;
  const range = view(width), lane = height / channels.length;
  const [first, last] = visibleRange(frames, range), [modelFirst, modelLast] = visibleRange(model, range);
  shadeSpans(context, range, 0, height, true);
  let drawn = 0;
  for (let c = 0; c < channels.length; c++) {
    const top = c * lane, middle = top + lane / 2;
    let scale = page.hello.emg_unit === "counts" ? 4 : 0.01;
    for (let i = first; i < last; i++) {
      const low = frames.value("emg_min", i, c), high = frames.value("emg_max", i, c);
      if (low === low) scale = Math.max(scale, -low, high);
    }
    const y = value => middle - value / scale * (lane / 2 - 3);
    context.strokeStyle = COLORS.grid; context.beginPath(); context.moveTo(LEFT, top + lane); context.lineTo(width, top + lane); context.stroke();
    context.strokeStyle = COLORS.raw; context.lineWidth = 1; context.beginPath();
    let dropout = false;
    for (let i = first; i < last; i++) {
      const low = frames.value("emg_min", i, c), high = frames.value("emg_max", i, c);
      if (low !== low) { dropout = i === last - 1; continue; }
      const x = range.x(frames.time(i));
      context.moveTo(x, y(low)); context.lineTo(x, Math.min(y(low) - 1, y(high)));
      drawn += 1;
    }
    context.stroke();
    context.strokeStyle = COLORS.envelope; context.lineWidth = 1.5; context.beginPath();
    let pen = false, previous = NaN, latest = NaN;
    for (let i = modelFirst; i < modelLast; i++) {
      const value = model.value("envelope", i, c), time = model.time(i);
      if (value !== value || time - previous > 3 / page.hello.model_rate_hz) pen = false;
      previous = time;
      if (value !== value) continue;
      latest = value;
      const x = range.x(time);
      if (pen) context.lineTo(x, y(value)); else context.moveTo(x, y(value));
      pen = true;
    }
    context.stroke();
    const unit = page.hello.emg_unit === "mV" ? [1000, "µV"] : [1, page.hello.emg_unit];
    const detail = dropout ? "DROPOUT" : (latest === latest ? `env ${(latest * unit[0]).toFixed(1)} ${unit[1]}` : "");
    laneLabel(context, channels[c].replace(/\.emg$/, "").replace(/_/g, " "), detail, top);
  }
  page.stats.drawn.emg = drawn;
}

function drawImu() {
  const [context, width, height] = prepare(document.getElementById("imu"));
  const frames = page.frames, hello = page.hello, range = view(width);
  const [first, last] = visibleRange(frames, range);
  const lanes = [["acc", hello.acc_channels.length, "accelerometer (g)"], ["gyro", hello.gyro_sensors.length, "gyroscope |ω| (deg/s)"]]
    .filter(entry => entry[1] > 0);
  if (!lanes.length) { laneLabel(context, "no IMU in this layout", "", 0); return; }
  const lane = height / lanes.length;
  let drawn = 0;
  lanes.forEach(([name, count, title], laneIndex) => {
    const top = laneIndex * lane;
    let low = Infinity, high = -Infinity;
    for (let i = first; i < last; i++) for (let k = 0; k < count; k++) {
      const value = frames.value(name, i, k); if (value === value) { low = Math.min(low, value); high = Math.max(high, value); }
    }
    if (name === "gyro") low = 0;
    if (!(high > low)) { high = low + 1; }
    const pad = 0.08 * (high - low);
    const y = value => top + lane - 4 - (value - low + pad) / (high - low + 2 * pad) * (lane - 8);
    context.strokeStyle = COLORS.grid; context.beginPath(); context.moveTo(LEFT, top + lane); context.lineTo(width, top + lane); context.stroke();
    for (let k = 0; k < count; k++) {
      context.strokeStyle = name === "acc" ? COLORS.axis[k % 3] : COLORS.sensors[k % COLORS.sensors.length];
      context.lineWidth = 1; context.beginPath();
      let pen = false, previous = NaN;
      for (let i = first; i < last; i++) {
        const value = frames.value(name, i, k), time = frames.time(i);
        if (value !== value || time - previous > 3 * hello.frame_period_s) pen = false;
        previous = time;
        if (value !== value) continue;
        const x = range.x(time);
        if (pen) context.lineTo(x, y(value)); else context.moveTo(x, y(value));
        pen = true; drawn += 1;
      }
      context.stroke();
    }
    laneLabel(context, title, `${low.toFixed(name === "acc" ? 2 : 0)} .. ${high.toFixed(name === "acc" ? 2 : 0)}`, top);
  });
  page.stats.drawn.imu = drawn;
}

function drawSegmentation() {
  const [context, width, height] = prepare(document.getElementById("segmentation"));
  const model = page.model, hello = page.hello, range = view(width);
  const [first, last] = visibleRange(model, range);
  let top = 100;
  for (let i = first; i < last; i++) top = Math.max(top, model.value("energy", i, 0), model.value("motion", i, 0), model.value("emg_on", i, 0) * 2);
  const lowLog = Math.log10(0.5), highLog = Math.log10(top * 1.5);
  const y = value => height - 4 - (Math.log10(Math.max(value, 0.5)) - lowLog) / (highLog - lowLog) * (height - 24);
  context.fillStyle = COLORS.segment;
  for (const [start, end] of page.segments) context.fillRect(range.x(start), 20, Math.max(2, range.x(end) - range.x(start)), height - 20);
  // The sign under way (found, not ended yet).
  let activeStart = NaN;
  for (let i = first; i < last; i++) {
    const active = model.value("active", i, 0) > 0;
    if (active && activeStart !== activeStart) activeStart = model.time(i);
    if (!active) activeStart = NaN;
  }
  if (activeStart === activeStart) context.fillRect(range.x(activeStart), 20, range.x(model.last()) - range.x(activeStart), height - 20);
  shadeSpans(context, range, 0, height, false);
  context.fillStyle = COLORS.text; context.font = "11px system-ui, sans-serif";
  for (const tick of [1, 10, 100, 1000]) {
    if (tick > top * 1.5) break;
    context.strokeStyle = COLORS.grid; context.beginPath(); context.moveTo(LEFT, y(tick)); context.lineTo(width, y(tick)); context.stroke();
    context.fillText(`${tick}x`, LEFT - 34, y(tick) + 4);
  }
  const line = (name, color, dash, constant) => {
    context.strokeStyle = color; context.setLineDash(dash); context.lineWidth = dash.length ? 1 : 1.6; context.beginPath();
    let pen = false, previous = NaN, drawn = 0;
    for (let i = first; i < last; i++) {
      const value = constant ?? model.value(name, i, 0), time = model.time(i);
      if (time - previous > 3 / hello.model_rate_hz) pen = false;
      previous = time;
      if (value !== value) { pen = false; continue; }
      const x = range.x(time);
      if (pen) context.lineTo(x, y(value)); else context.moveTo(x, y(value));
      pen = true; drawn += 1;
    }
    context.stroke(); context.setLineDash([]);
    return drawn;
  };
  line("emg_on", COLORS.energy, [], undefined);
  line("emg_off", COLORS.energy, [5, 4], undefined);
  line("motion_on", COLORS.motion, [], hello.motion_on);
  line("motion_off", COLORS.motion, [5, 4], hello.motion_off);
  const drawn = line("energy", COLORS.energy, [], undefined) + line("motion", COLORS.motion, [], undefined);
  const latest = model.length ? `energy ${model.value("energy", model.length - 1, 0).toFixed(1)}x, motion ${model.value("motion", model.length - 1, 0).toFixed(1)}x` : "";
  laneLabel(context, "over rest baseline", latest, 0);
  page.stats.drawn.segmentation = drawn;
}

function drawTimeAxis() {
  const end = page.frames.last();
  document.getElementById("clock").textContent = end === end ? `sensor clock ${end.toFixed(1)} s` : "";
}

let lastDraw = 0;
function frame(now) {
  window.requestAnimationFrame(frame);
  if (!page.hello || !page.frames || !page.frames.length) return;
  if (!page.dirty && now - lastDraw < 250) return;
  if (now - lastDraw < 33) return;  // at most 30 redraws a second
  lastDraw = now; page.dirty = false;
  drawEmg(); drawImu(); drawSegmentation(); drawTimeAxis();
}

function connect() {
  const source = new EventSource("events");
  const pill = document.getElementById("connection");
  source.onopen = () => { page.connected = true; pill.textContent = "live"; pill.className = "pill live"; renderBanner(); };
  source.onerror = () => { page.connected = false; pill.textContent = "reconnecting"; pill.className = "pill down"; renderBanner(); };
  source.onmessage = message => {
    const data = JSON.parse(message.data);
    page.stats.messages += 1;
    if (data.kind === "hello") { page.stats.hellos += 1; reset(data); }
    else if (data.kind === "traces") onTraces(data);
    else if (data.kind === "prediction") onPrediction(data);
    else if (data.kind === "event") onEvent(data);
    else if (data.kind === "health") onHealth(data);
  };
}

connect();
window.requestAnimationFrame(frame);
