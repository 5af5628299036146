// Writes the traces page's workers make while they live (imported by traces-worker.js and
// traces-sw.js): into the origin's storage a worker can reach without a document, among them
// the origin private file system, which a check of IndexedDB, caches and cookies alone misses.
"use strict";

const LATE = "sb-late";

function sleepFor(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function writeDatabase(who) {
  return new Promise((resolve) => {
    const request = indexedDB.open(LATE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore("writes");
    request.onerror = () => resolve();
    request.onsuccess = () => {
      const database = request.result;
      const transaction = database.transaction("writes", "readwrite");
      transaction.objectStore("writes").put(Date.now(), who);
      transaction.oncomplete = transaction.onerror = () => { database.close(); resolve(); };
    };
  });
}

async function writeFile(who) {
  const root = await navigator.storage.getDirectory();
  await root.getFileHandle(`${LATE}-${who}`, {create: true});
}

async function writeEverywhere(who) {
  await Promise.all([
    writeDatabase(who).catch(() => {}),
    caches.open(LATE).then((cache) => cache.put(`${LATE}-${who}`, new Response(String(Date.now())))).catch(() => {}),
    writeFile(who).catch(() => {}),
  ]);
}

// Every `everyMs` until `forMs` have passed.
async function keepWriting(who, everyMs, forMs) {
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    await writeEverywhere(who);
    await sleepFor(everyMs);
  }
}
