// A service worker that would fetch elsewhere; the engine's contexts block service workers.
self.addEventListener("install", () => { fetch(self.location.origin.replace(/:\d+$/, "") + "/sw-install"); });
