/*
 * Service worker: one loopback WebSocket per tab that runs the bridge. The token (from the options
 * page) stays here; pages never see it. A page is served only if its origin, as Chrome reports
 * it for the port (the page cannot forge this), is in the allow-list the options page stores, and
 * the hello sent upstream carries that origin, so the agent can check it too.
 */
'use strict';

var PROTOCOL = 'ambient.editor.v1';
var TOKEN_PREFIX = 'ambient-token.';
var DEFAULT_PORT = 47615;

chrome.runtime.onConnect.addListener(function (port) {
  if (port.name !== 'ambient-editor' || !port.sender) return;
  var origin = port.sender.origin || (port.sender.url ? new URL(port.sender.url).origin : '');
  var ws = null;
  var queue = [];
  var closed = false;

  port.onDisconnect.addListener(function () {
    closed = true;
    if (ws) ws.close(1000, 'tab closed');
  });
  port.onMessage.addListener(function (msg) {
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'hello') msg = Object.assign({}, msg, { client: 'extension', page_origin: origin });
    var text = JSON.stringify(msg);
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(text);
    else queue.push(text);
  });

  chrome.storage.local.get(['port', 'token', 'origins']).then(function (cfg) {
    if (closed) return;
    var origins = Array.isArray(cfg.origins) ? cfg.origins : [];
    if (!cfg.token || origins.indexOf(origin) < 0) {
      port.postMessage({ type: 'bridge_status', ok: false, reason: cfg.token ? 'site not allowed' : 'not configured' });
      // Stay connected but idle: the relay would otherwise retry forever on a site we do not serve.
      return;
    }
    ws = new WebSocket('ws://127.0.0.1:' + (cfg.port || DEFAULT_PORT), [PROTOCOL, TOKEN_PREFIX + cfg.token]);
    ws.onopen = function () {
      queue.splice(0).forEach(function (text) { ws.send(text); });
      port.postMessage({ type: 'bridge_status', ok: true });
    };
    ws.onmessage = function (event) {
      try { port.postMessage(JSON.parse(event.data)); } catch (e) { /* not JSON: ignore */ }
    };
    ws.onclose = function () {
      if (!closed) port.disconnect(); // the relay reconnects with backoff, and so do we
    };
  });
});
