// The traces page's service worker. It claims every page of its scope at once, so a later
// episode's page would be controlled by it (and say so) if it outlived its episode; on
// "keep-writing" (or "keep-writing-files") it keeps itself alive and writes into the origin's
// storage for a minute.
importScripts("traces-writes.js");

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("message", (event) => {
  if (isKeepWriting(event.data)) event.waitUntil(keepWriting("service-worker", event.data, 20, 60000));
});
