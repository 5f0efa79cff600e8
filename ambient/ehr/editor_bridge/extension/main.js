/* MAIN-world bootstrap for the extension: wire core.js to the isolated-world relay (relay.js). */
(function () {
  'use strict';
  if (window.__ambientEditorBridge) window.__ambientEditorBridge.connectRelay();
})();
