// The traces page: on load it looks for every trace an earlier episode could have left in this
// browser context and writes what it finds into the page, so the agent's first observation
// shows it. The "leave" button leaves all of them; "keep writing" then makes this tab, its
// workers and its unload handlers write into storage for as long as they live, as a page would
// that tries to write again while its context is being reset. Only the asset server's origin
// is used.
// The tab's history length is shown rather than judged: how many entries a fresh tab has
// depends on how it was opened (Playwright's new page commits about:blank first).
"use strict";

const MARK = "episode-a";
const CHANNEL = "sb-traces";
const DATABASE = "sb-traces";
const CACHE = "sb-traces";
const LOCK = "sb-traces";
const PROBE = "traces.html?http-cache-probe=1";
const BUCKET = "sb-traces";
const FILE = "sb-trace";
const CLIPBOARD = `sb-clipboard-${MARK}`;
const PERMISSIONS = ["geolocation", "notifications", "camera", "microphone", "midi", "clipboard-read"];
const BROADCAST_WAIT_MS = 300;
const WORKER_WAIT_MS = 1000;
const LATE_WRITE_EVERY_MS = 100;
const KEEP_WRITING_EVERY_MS = 5;

const params = new URLSearchParams(location.search);
const byId = (id) => document.getElementById(id);
// When this document's navigation started (ms since the epoch): before a preloading spare
// publishes the page, after an episode's setup navigates.
const loadedAt = Math.round(performance.timeOrigin);
// Whether this document itself left the live traces: it then answers pings, which a check
// from this same document must not count.
let armed = false;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function within(promise, ms, fallback) {
  return Promise.race([promise, sleep(ms).then(() => fallback)]);
}

function list(id, prefix, entries) {
  const target = byId(id);
  target.replaceChildren();
  for (const [name, detail] of entries) {
    const item = document.createElement("li");
    item.id = prefix + name;
    item.textContent = `${name}: ${String(detail).slice(0, 150)}`;
    target.append(item);
  }
}

// -- the shared worker, a BroadcastChannel, a lock: traces that live as long as a document -----

let sharedWorker = null;

function workerPort() {
  if (!sharedWorker && typeof SharedWorker === "function") {
    sharedWorker = new SharedWorker("traces-worker.js", {name: "sb-traces"});
    sharedWorker.port.start();
  }
  return sharedWorker ? sharedWorker.port : null;
}

function askWorker(message) {
  const port = workerPort();
  if (!port) return Promise.resolve(null);
  return within(new Promise((resolve) => {
    port.addEventListener("message", (event) => resolve(event.data), {once: true});
    port.postMessage(message);
  }), WORKER_WAIT_MS, null);
}

async function pingOthers() {
  const channel = new BroadcastChannel(CHANNEL);
  const answers = [];
  channel.onmessage = (event) => {
    if (event.data && event.data.kind === "pong") answers.push(event.data.from);
  };
  channel.postMessage({kind: "ping"});
  await sleep(BROADCAST_WAIT_MS);
  channel.close();
  return answers;
}

// `writer`: also write cookies and local storage on a timer, for as long as the document lives.
async function armLiveTraces(who, writer) {
  armed = true;
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (event) => {
    if (event.data && event.data.kind === "ping") channel.postMessage({kind: "pong", from: who});
  };
  window.sbChannel = channel;  // kept reachable for as long as the document lives
  const left = [["broadcast-channel", who]];
  if (navigator.locks) {
    navigator.locks.request(`${LOCK}-${who}`, () => new Promise(() => {}));
    left.push(["web-lock", `${LOCK}-${who}`]);
  }
  const marked = await askWorker(`mark:${MARK}`);
  if (marked && marked.mark === MARK) left.push(["shared-worker", MARK]);
  if (writer) {
    setInterval(() => {
      localStorage.setItem("sb_late", String(Date.now()));
      document.cookie = "sb_late=1; path=/; SameSite=Lax";
    }, LATE_WRITE_EVERY_MS);
    left.push(["late-writer", `every ${LATE_WRITE_EVERY_MS} ms`]);
  }
  return left;
}

// -- looking for traces -----------------------------------------------------------------------

async function permissionStates() {
  const states = {};
  for (const name of PERMISSIONS) {
    try {
      states[name] = (await navigator.permissions.query({name})).state;
    } catch (error) {
      states[name] = "unsupported";
    }
  }
  return states;
}

// Each probe adds what it finds. A probe that fails is reported as found too ("...-probe-failed"):
// a page that cannot look must not pass for a clean one.
const PROBES = {
  "cookie": (add) => { if (document.cookie) add(document.cookie); },
  "local-storage": (add) => { if (localStorage.length) add(Object.keys(localStorage).join(" ")); },
  "session-storage": (add) => { if (sessionStorage.length) add(Object.keys(sessionStorage).join(" ")); },
  "window-name": (add) => { if (window.name) add(window.name); },
  "history-state": (add) => { if (history.state !== null) add(JSON.stringify(history.state)); },
  "referrer": (add) => { if (document.referrer) add(document.referrer); },
  "opener": (add) => { if (window.opener) add("this tab has an opener"); },
  "focus": (add, onLoad) => {
    if (!onLoad) return;  // a second look comes from a click, which focuses its button
    const active = document.activeElement;
    if (active && active !== document.body && active !== document.documentElement) add(active.id || active.tagName);
  },
  "scroll": (add) => { if (window.scrollX || window.scrollY) add(`${window.scrollX},${window.scrollY}`); },
  "navigation-type": (add, onLoad) => {
    // A reload or a history navigation keeps state of the document before (its history
    // entry's state, its scroll position): a first episode's page is a plain navigation.
    const [navigation] = performance.getEntriesByType("navigation");
    if (onLoad && navigation && navigation.type !== "navigate") add(navigation.type);
  },
  "typed-text": (add) => { if (byId("note").value) add(byId("note").value); },
  "indexeddb": async (add) => {
    const databases = await indexedDB.databases();
    if (databases.length) add(databases.map((database) => database.name).join(" "));
  },
  "file-system": async (add) => {
    const names = [];
    for await (const name of (await navigator.storage.getDirectory()).keys()) names.push(name);
    if (names.length) add(names.join(" "));
  },
  "storage-bucket": async (add) => {
    const buckets = await navigator.storageBuckets.keys();
    if (buckets.length) add(buckets.join(" "));
  },
  "cache-storage": async (add) => {
    const keys = await caches.keys();
    if (keys.length) add(keys.join(" "));
  },
  "service-worker": async (add) => {
    const registrations = await within(navigator.serviceWorker.getRegistrations(), WORKER_WAIT_MS, []);
    if (registrations.length) add(registrations.map((registration) => registration.scope).join(" "));
  },
  "service-worker-control": (add) => {
    if (navigator.serviceWorker.controller) add(navigator.serviceWorker.controller.scriptURL);
  },
  "web-lock": async (add) => {
    const locks = await navigator.locks.query();
    const names = [...locks.held, ...locks.pending].map((lock) => lock.name);
    if (names.length) add(names.join(" "));
  },
  "broadcast-channel": async (add) => {
    if (armed) return;  // this document answers pings itself
    const answers = await pingOthers();
    if (answers.length) add(answers.join(" "));
  },
  "shared-worker": async (add) => {
    const worker = await askWorker("who");
    if (worker && worker.mark) add(worker.mark);
  },
  "http-cache": async (add) => {
    const cached = await fetch(PROBE, {cache: "only-if-cached", mode: "same-origin"}).catch(() => null);
    if (cached && cached.ok) add(PROBE);
  },
  "permission": async (add) => {
    const states = await permissionStates();
    const asked = Object.keys(states).filter((name) => !["prompt", "unsupported"].includes(states[name]));
    if (asked.length) add(asked.map((name) => `${name} ${states[name]}`).join(" "));
  },
};

async function detect(onLoad) {
  const found = [];
  for (const [name, probe] of Object.entries(PROBES)) {
    try {
      await probe((detail) => found.push([name, detail]), onLoad);
    } catch (error) {
      found.push([`${name}-probe-failed`, String(error)]);
    }
  }
  return found;
}

async function check(onLoad) {
  byId("status").textContent = "checking";
  const found = await detect(onLoad);
  list("found", "found-", found);
  byId("verdict").textContent = found.length ? `found ${found.length}` : "clean";
  byId("history-length").textContent = String(history.length);
  byId("status").textContent = "checked";
}

// -- leaving traces ---------------------------------------------------------------------------

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore("traces");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function leaveIndexedDb() {
  const database = await openDatabase();
  await new Promise((resolve, reject) => {
    const transaction = database.transaction("traces", "readwrite");
    transaction.objectStore("traces").put(MARK, "mark");
    transaction.oncomplete = resolve;
    transaction.onerror = () => reject(transaction.error);
  });
  database.close();
}

async function leaveServiceWorker() {
  // Playwright's "block" replaces navigator.serviceWorker.register on the instance; the
  // prototype's own method is tried as well, as a page bent on leaving a worker would.
  const registered = await navigator.serviceWorker.register("traces-sw.js").catch(() => undefined);
  if (registered) return "registered";
  const direct = await ServiceWorkerContainer.prototype.register
    .call(navigator.serviceWorker, "traces-sw.js").catch(() => undefined);
  return direct ? "registered past the block" : null;
}

async function leavePermissions() {
  const before = await permissionStates();
  const asked = [];
  if (typeof Notification === "function") asked.push(within(Notification.requestPermission(), 1000, null));
  if (navigator.geolocation) {
    asked.push(within(new Promise((resolve) => navigator.geolocation.getCurrentPosition(resolve, resolve)), 1000, null));
  }
  await Promise.all(asked);
  const after = await permissionStates();
  const changed = Object.keys(after).filter((name) => after[name] !== before[name]);
  return changed.length ? changed.map((name) => `${name} ${after[name]}`).join(" ") : null;
}

async function attempt(left, name, leaveOne) {
  try {
    const detail = await leaveOne();
    if (detail) left.push([name, detail]);
  } catch (error) {
    left.push([`${name}-refused`, String(error).slice(0, 80)]);
  }
}

async function leave(withPermission) {
  byId("status").textContent = "leaving";
  const left = [];
  // First, while this document has the focus (the clipboard wants it) and the click's user
  // activation is fresh (window.open wants it): the new tab then takes the focus.
  const clipboardWritten = navigator.clipboard.writeText(CLIPBOARD).then(() => CLIPBOARD);
  if (window.open("traces.html?extra-tab=1", "sb-extra-tab")) left.push(["extra-tab", "traces.html?extra-tab=1"]);
  document.cookie = `sb_session=${MARK}; path=/; SameSite=Lax`;
  document.cookie = `sb_persist=${MARK}; path=/; max-age=31536000; SameSite=Lax`;
  if (document.cookie.includes("sb_persist")) left.push(["cookie", document.cookie]);
  localStorage.setItem("sb_trace", MARK);
  left.push(["local-storage", "sb_trace"]);
  sessionStorage.setItem("sb_trace", MARK);
  left.push(["session-storage", "sb_trace"]);
  window.name = `sb-trace-${MARK}`;
  left.push(["window-name", window.name]);
  // Same URL, so the tab still shows the task's page: a later episode's setup may keep it.
  history.pushState({trace: MARK}, "", location.href);
  history.pushState({trace: MARK}, "", location.href);
  left.push(["history", `${history.length} entries`], ["history-state", MARK]);
  await attempt(left, "indexeddb", async () => { await leaveIndexedDb(); return DATABASE; });
  await attempt(left, "cache-storage", async () => {
    await (await caches.open(CACHE)).put("traces-cached", new Response(MARK));
    return CACHE;
  });
  await attempt(left, "file-system", async () => {
    const file = await (await navigator.storage.getDirectory()).getFileHandle(FILE, {create: true});
    const writable = await file.createWritable();
    await writable.write(MARK);
    await writable.close();
    return FILE;
  });
  await attempt(left, "storage-bucket", async () => {
    const bucket = await navigator.storageBuckets.open(BUCKET);
    await (await bucket.caches.open(CACHE)).put("traces-cached", new Response(MARK));
    return BUCKET;
  });
  await attempt(left, "clipboard", () => clipboardWritten);
  await attempt(left, "service-worker", leaveServiceWorker);
  await attempt(left, "http-cache", async () => {
    await fetch(PROBE, {cache: "force-cache"});
    const cached = await fetch(PROBE, {cache: "only-if-cached", mode: "same-origin"}).catch(() => null);
    return cached && cached.ok ? PROBE : null;
  });
  // A permission refused is never cleared from a context: the reset closes such a context,
  // so a trial that must see the context reused leaves this one trace out.
  if (withPermission) await attempt(left, "permission", leavePermissions);
  left.push(...await armLiveTraces("the page that left them", false));
  list("left", "left-", left);
  byId("status").textContent = "left";
}

function writeNow(who) {
  localStorage.setItem("sb_late", who);
  sessionStorage.setItem("sb_late", who);
  document.cookie = `sb_late=${who}; path=/; SameSite=Lax`;
  window.name = `sb-late-${who}`;
}

// `fromThisTab`: this tab's timer and unload handlers write too, and the workers write everywhere
// they can; else only the workers write, which outlive the tab's document for a while (a service
// worker until its event's work is done), and only files.
async function keepWriting(fromThisTab) {
  const message = fromThisTab ? "keep-writing" : "keep-writing-files";
  byId("status").textContent = "starting to write";
  const writing = [];
  if (fromThisTab) {
    setInterval(() => writeNow("timer"), KEEP_WRITING_EVERY_MS);
    writing.push(["timer", `every ${KEEP_WRITING_EVERY_MS} ms`]);
    for (const event of ["beforeunload", "pagehide", "unload", "visibilitychange"]) {
      window.addEventListener(event, () => {
        writeNow(event);
        indexedDB.open(`sb-late-${event}`, 1);
      });
    }
    writing.push(["unload-handlers", "beforeunload pagehide unload visibilitychange"]);
  }
  await askWorker(message);
  writing.push(["shared-worker-writer", `${message} every 20 ms`]);
  const registration = await within(navigator.serviceWorker.ready, WORKER_WAIT_MS, null);
  if (registration && registration.active) {
    registration.active.postMessage(message);
    writing.push(["service-worker-writer", `${message} every 20 ms`]);
  }
  list("writing", "writing-", writing);
  byId("status").textContent = "writing";
}

byId("leave").addEventListener("click", () => { leave(true); });
byId("leave-but-permission").addEventListener("click", () => { leave(false); });
byId("keep-writing").addEventListener("click", () => { keepWriting(true); });
byId("workers-keep-writing").addEventListener("click", () => { keepWriting(false); });
byId("recheck").addEventListener("click", () => { check(false); });
if (params.has("hop")) byId("hop").href = "traces.html";
byId("loaded-at").textContent = String(loadedAt);

(async () => {
  // After "load": a restored scroll position is applied by then.
  if (document.readyState !== "complete") await new Promise((resolve) => window.addEventListener("load", resolve));
  await check(true);
  // The tab a click opens stays behind with the live traces, as a forgotten tab would.
  if (params.has("extra-tab")) await armLiveTraces("the extra tab", true);
})();
