/*
 * Isolated-world relay: carries bridge messages between core.js in the page (window.postMessage)
 * and the service worker (a runtime port). It holds no secret; the worker decides whether this
 * page's origin may use the bridge at all, from chrome's own record of the sender.
 */
(function () {
  'use strict';
  var CHANNEL = 'ambient-editor-bridge';
  var port = null;
  var delay = 500;

  function toPage(msg) {
    window.postMessage({ channel: CHANNEL, dir: 'to-page', msg: msg }, location.origin);
  }

  function connect() {
    try {
      port = chrome.runtime.connect({ name: 'ambient-editor' });
    } catch (e) {
      return; // the extension was reloaded or removed: this page keeps working without it
    }
    port.onMessage.addListener(function (msg) {
      if (msg && msg.type === 'bridge_status' && msg.ok) delay = 500;
      toPage(msg);
    });
    port.onDisconnect.addListener(function () {
      port = null;
      toPage({ type: 'bridge_status', ok: false, reason: 'disconnected' });
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 4000);
    });
  }

  window.addEventListener('message', function (event) {
    var data = event.data;
    if (event.source !== window || !data || data.channel !== CHANNEL || data.dir !== 'to-agent') return;
    if (port) port.postMessage(data.msg);
  });
  connect();
})();
