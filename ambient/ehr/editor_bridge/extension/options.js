/* Options: port, token and the EHR origins the bridge serves, kept in chrome.storage.local. */
'use strict';
var $ = function (id) { return document.getElementById(id); };
$('ext-id').textContent = chrome.runtime.id;
chrome.storage.local.get(['port', 'token', 'origins']).then(function (cfg) {
  $('port').value = cfg.port || '';
  $('token').value = cfg.token || '';
  $('origins').value = (cfg.origins || []).join('\n');
});
$('save').addEventListener('click', function () {
  var origins = $('origins').value.split('\n').map(function (s) { return s.trim().replace(/\/+$/, ''); })
    .filter(function (s) { return /^https?:\/\/[^/]+$/.test(s); });
  var token = $('token').value.trim();
  if (token && !/^[0-9a-f]{32,}$/.test(token)) { $('status').textContent = 'That is not a token file\'s contents.'; return; }
  chrome.storage.local.set({ port: parseInt($('port').value, 10) || 47615, token: token, origins: origins })
    .then(function () { $('status').textContent = 'Saved. Reload the EHR tab.'; });
});
