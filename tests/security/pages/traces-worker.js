// The traces page's shared worker: it lives as long as a document of its browser context is
// connected to it. It remembers which episode marked it, so a later page that connects can ask,
// and on "keep-writing" (or "keep-writing-files") it writes into the origin's storage until it
// is stopped.
importScripts("traces-writes.js");

let mark = null;
onconnect = (event) => {
  const port = event.ports[0];
  port.onmessage = (message) => {
    if (typeof message.data === "string" && message.data.startsWith("mark:")) mark = message.data.slice(5);
    if (isKeepWriting(message.data)) keepWriting("shared-worker", message.data, 20, 60000);
    port.postMessage({mark});
  };
};
