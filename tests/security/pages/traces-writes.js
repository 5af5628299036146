// Writes the traces page's workers make while they live (imported by traces-worker.js and
// traces-sw.js): into the origin's storage a worker can reach without a document. On
// "keep-writing" they write IndexedDB, the Cache API and the origin private file system; on
// "keep-writing-files", files alone, which a check of IndexedDB, caches and cookies misses.
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

async function writeEverywhere(who, filesOnly) {
  const writes = [writeFile(who).catch(() => {})];
  if (!filesOnly) {
    writes.push(writeDatabase(who).catch(() => {}));
    writes.push(caches.open(LATE).then((cache) => cache.put(`${LATE}-${who}`, new Response(String(Date.now()))))
      .catch(() => {}));
  }
  await Promise.all(writes);
}

// On "keep-writing" or "keep-writing-files": write every `everyMs` until `forMs` have passed.
async function keepWriting(who, message, everyMs, forMs) {
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    await writeEverywhere(who, message === "keep-writing-files");
    await sleepFor(everyMs);
  }
}

function isKeepWriting(message) {
  return message === "keep-writing" || message === "keep-writing-files";
}
