/*
 * ambient editor bridge: the page side. Runs in the EHR page's MAIN world, where the editors'
 * own APIs (tinymce, CKEditor's ckeditorInstance, Quill) are reachable.
 *
 * This one file holds every editor adapter. The Manifest V3 extension loads it as a MAIN-world
 * content script (then main.js wires it to the extension's relay); the userscript / bookmarklet
 * build is this file plus one line that connects it straight to the loopback WebSocket. There is
 * no second copy of the adapters anywhere.
 *
 * Rules every adapter keeps: the editor's own API first, a generic fallback second; never replace
 * what the clinician typed (insert at the caret; a selection is kept and the draft goes after it;
 * with no caret the clinician chose, the draft is appended after a line break); one undo step where
 * the editor allows;
 * report what was inserted (adapter, editor, where, characters, undo steps).
 */
(function () {
  'use strict';
  if (window.__ambientEditorBridge) return;
  // Editors' own iframes (TinyMCE's about:srcdoc) are driven through the editor's API from the
  // page that owns them; an instance in there would report the same editor as a bare
  // contenteditable. Real pages and same-origin EHR frames are http(s).
  if (!/^https?:$/.test(location.protocol)) return;

  var VERSION = '1';
  var PROTOCOL = 'ambient.editor.v1';
  var TOKEN_PREFIX = 'ambient-token.';
  var RELAY_CHANNEL = 'ambient-editor-bridge';

  // ---- editor identity -------------------------------------------------------------------------
  var ids = new WeakMap();
  var nextId = 1;
  function idOf(obj) {
    if (!ids.has(obj)) ids.set(obj, 'ed' + nextId++);
    return ids.get(obj);
  }
  function labelOf(el) {
    if (!el || !el.getAttribute) return '';
    var label = el.getAttribute('aria-label') || el.getAttribute('name') || el.id || '';
    return String(label).slice(0, 60);
  }
  function textLength(el) {
    return (el.innerText || el.textContent || '').length;
  }

  // ---- adapters ----------------------------------------------------------------------------------
  // Each adapter: find(target) → handle or null; info(handle) → {id, adapter, label};
  // insert(handle, text, html) → {where, inserted_chars, undo_steps}.

  function tinymceEditors() {
    var t = window.tinymce;
    return t && typeof t.get === 'function' ? t.get() : [];
  }

  var tinymceAdapter = {
    name: 'tinymce',
    find: function (target) {
      var eds = tinymceEditors();
      for (var i = 0; i < eds.length; i++) {
        var ed = eds[i];
        var container = ed.getContainer && ed.getContainer();
        var body = ed.getBody && ed.getBody();
        if ((container && container.contains(target)) || (body && (body === target || body.contains(target)))) {
          return ed;
        }
      }
      return null;
    },
    info: function (ed) { return { id: idOf(ed), adapter: 'tinymce', label: String(ed.id || '').slice(0, 60) }; },
    insert: function (ed, text, html, hasCaret) {
      ed.focus(); // restores TinyMCE's own bookmark of the caret
      var sel = ed.selection;
      var where = 'caret';
      if (!hasCaret) {
        sel.select(ed.getBody(), true);
        sel.collapse(false);
        where = 'end';
      } else if (!sel.isCollapsed()) {
        sel.collapse(false);
        where = 'after-selection';
      }
      var before = ed.getContent({ format: 'text' }).length;
      ed.undoManager.transact(function () { ed.insertContent(html); });
      var after = ed.getContent({ format: 'text' }).length;
      return { where: where, inserted_chars: Math.max(0, after - before), undo_steps: 1 };
    },
  };

  var ckeditorAdapter = {
    name: 'ckeditor5',
    find: function (target) {
      var editable = target && target.closest && target.closest('.ck-editor__editable');
      return editable && editable.ckeditorInstance ? { editor: editable.ckeditorInstance, el: editable } : null;
    },
    info: function (h) { return { id: idOf(h.editor), adapter: 'ckeditor5', label: labelOf(h.el) }; },
    insert: function (h, text, html, hasCaret) {
      var editor = h.editor;
      if (editor.isReadOnly) throw new Error('editor is read-only');
      var where = hasCaret ? 'caret' : 'end';
      var before = textLength(h.el);
      editor.model.change(function (writer) {
        var selection = editor.model.document.selection;
        if (!hasCaret) {
          writer.setSelection(writer.createPositionAt(editor.model.document.getRoot(), 'end'));
        } else if (!selection.isCollapsed) {
          writer.setSelection(selection.getLastPosition());
          where = 'after-selection';
        }
        var fragment = editor.data.toModel(editor.data.processor.toView(html));
        editor.model.insertContent(fragment); // one model.change → one undo step
      });
      editor.editing.view.focus();
      return { where: where, inserted_chars: Math.max(0, textLength(h.el) - before), undo_steps: 1 };
    },
  };

  var quillAdapter = {
    name: 'quill',
    find: function (target) {
      var Quill = window.Quill;
      var container = target && target.closest && target.closest('.ql-container');
      if (!container || !Quill || typeof Quill.find !== 'function') return null;
      var quill = Quill.find(container);
      return quill && typeof quill.insertText === 'function' ? quill : null;
    },
    info: function (q) { return { id: idOf(q), adapter: 'quill', label: labelOf(q.container) }; },
    insert: function (q, text, html, hasCaret) {
      if (!q.isEnabled()) throw new Error('editor is read-only');
      var before = q.getLength();
      var range = hasCaret ? q.getSelection(true) : null; // true: focus, restoring the saved range
      var where = 'caret';
      var index;
      if (!range) {
        index = before - 1; // before Quill's trailing newline
        where = 'end';
      } else if (range.length > 0) {
        index = range.index + range.length;
        where = 'after-selection';
      } else {
        index = range.index;
      }
      // cutoff() on both sides: the clinician's typing a moment ago must not merge into this step.
      if (q.history) q.history.cutoff();
      if (where === 'end' && before > 1) {
        q.insertText(index, '\n', 'user');
        index += 1;
      }
      q.clipboard.dangerouslyPasteHTML(index, html, 'user');
      if (q.history) q.history.cutoff();
      return { where: where, inserted_chars: Math.max(0, q.getLength() - before), undo_steps: 1 };
    },
  };

  var textareaAdapter = {
    name: 'textarea',
    find: function (target) {
      if (!target || target.disabled || target.readOnly) return null;
      if (target.tagName === 'TEXTAREA') return target;
      if (target.tagName === 'INPUT' && /^(text|search|)$/i.test(target.type || '')) return target;
      return null;
    },
    info: function (el) { return { id: idOf(el), adapter: 'textarea', label: labelOf(el) }; },
    insert: function (el, text, html, hasCaret) {
      var value = el.value;
      var before = value.length;
      var start = hasCaret ? el.selectionStart : value.length;
      var end = hasCaret ? el.selectionEnd : value.length;
      var where = !hasCaret ? 'end' : start !== end ? 'after-selection' : 'caret';
      var pos = Math.max(start, end);
      var piece = text;
      if (pos > 0 && value.charAt(pos - 1) !== '\n') piece = (where === 'end' ? '\n\n' : '\n') + piece;
      if (pos < value.length && value.charAt(pos) !== '\n') piece = piece + '\n';
      el.focus();
      el.setSelectionRange(pos, pos);
      var undoable = false;
      try {
        undoable = document.execCommand('insertText', false, piece); // the browser's undo stack
      } catch (e) {
        undoable = false;
      }
      if (!undoable || el.value.length === before) {
        el.setRangeText(piece, pos, pos, 'end');
        el.dispatchEvent(new Event('input', { bubbles: true }));
        undoable = false;
      }
      return { where: where, inserted_chars: el.value.length - before, undo_steps: undoable ? 1 : 0 };
    },
  };

  // contenteditable: the generic fallback for any rich editor we have no adapter for.
  var savedRanges = new WeakMap();
  function editingHost(target) {
    var el = target && target.nodeType === 1 ? target : target && target.parentElement;
    if (!el || !el.isContentEditable) return null;
    while (el.parentElement && el.parentElement.isContentEditable) el = el.parentElement;
    return el;
  }
  var contenteditableAdapter = {
    name: 'contenteditable',
    find: editingHost,
    info: function (el) { return { id: idOf(el), adapter: 'contenteditable', label: labelOf(el) }; },
    insert: function (el, text, html, hasCaret) {
      var before = textLength(el);
      var range = hasCaret ? savedRanges.get(el) : null;
      var where = 'caret';
      if (!range || !el.contains(range.startContainer)) {
        range = document.createRange();
        range.selectNodeContents(el);
        range.collapse(false);
        where = 'end';
      } else if (!range.collapsed) {
        range = range.cloneRange();
        range.collapse(false);
        where = 'after-selection';
      }
      el.focus();
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var undoable = false;
      try {
        undoable = document.execCommand('insertHTML', false, html);
      } catch (e) {
        undoable = false;
      }
      if (!undoable) {
        var fragment = range.createContextualFragment(html);
        range.insertNode(fragment);
      }
      return { where: where, inserted_chars: Math.max(0, textLength(el) - before), undo_steps: undoable ? 1 : 0 };
    },
  };

  // Order matters: the rich editors are contenteditable too, so their own API is tried first.
  var ADAPTERS = [tinymceAdapter, ckeditorAdapter, quillAdapter, textareaAdapter, contenteditableAdapter];

  function findEditor(target) {
    for (var i = 0; i < ADAPTERS.length; i++) {
      var handle = ADAPTERS[i].find(target);
      if (handle) return { adapter: ADAPTERS[i], handle: handle, info: ADAPTERS[i].info(handle) };
    }
    return null;
  }

  function inventory() {
    var seen = {};
    var list = [];
    function add(found) {
      if (found && !seen[found.info.id]) {
        seen[found.info.id] = true;
        list.push(found.info);
      }
    }
    tinymceEditors().forEach(function (ed) {
      add({ adapter: tinymceAdapter, handle: ed, info: tinymceAdapter.info(ed) });
    });
    var nodes = document.querySelectorAll('.ck-editor__editable, .ql-container, textarea, input[type=text], [contenteditable=""], [contenteditable=true]');
    for (var i = 0; i < nodes.length && list.length < 200; i++) {
      var node = nodes[i].classList.contains('ql-container') ? nodes[i].querySelector('.ql-editor') || nodes[i] : nodes[i];
      if (node.getClientRects().length === 0) continue; // hidden: e.g. the textarea TinyMCE replaced
      add(findEditor(node));
    }
    return list;
  }

  // ---- focus tracking ----------------------------------------------------------------------------
  var focused = null; // {adapter, handle, info}: the editor the clinician was in last
  var listeners = [];
  // Editors the clinician has clicked or typed in. One that only has focus because the page
  // autofocused it has a caret nobody chose (usually at the start, before a template's text), so
  // the draft goes at its end instead.
  var touched = new WeakSet();
  function keyOf(found) { return found.handle.editor || found.handle; }
  function markTouched(event) {
    var found = findEditor(event.target);
    if (found) touched.add(keyOf(found));
  }
  document.addEventListener('pointerdown', markTouched, true);
  document.addEventListener('keydown', markTouched, true);
  function setFocused(found) {
    if (!found) return;
    var changed = !focused || focused.info.id !== found.info.id;
    focused = found;
    if (changed) emit({ type: 'focus', editor: found.info });
  }
  document.addEventListener('focusin', function (event) { setFocused(findEditor(event.target)); }, true);
  document.addEventListener('selectionchange', function () {
    var sel = window.getSelection();
    if (!sel || sel.rangeCount === 0) return;
    var host = editingHost(sel.anchorNode);
    if (host) savedRanges.set(host, sel.getRangeAt(0).cloneRange());
  });
  // TinyMCE edits inside an iframe, whose focus never reaches this document: use its own events.
  var hookedTiny = new WeakSet();
  function tinyFound(ed) { return { adapter: tinymceAdapter, handle: ed, info: tinymceAdapter.info(ed) }; }
  function hookTinymce() {
    tinymceEditors().forEach(function (ed) {
      if (hookedTiny.has(ed)) return;
      hookedTiny.add(ed);
      ed.on('focus', function () { setFocused(tinyFound(ed)); });
      ed.on('mousedown keydown', function () { touched.add(ed); });
      if (ed.hasFocus && ed.hasFocus()) setFocused(tinyFound(ed)); // focused before we hooked it
    });
  }
  // Focus moving into any iframe shows up here only as the top window's blur.
  window.addEventListener('blur', function () {
    setTimeout(function () {
      if (document.activeElement && document.activeElement.tagName === 'IFRAME') {
        hookTinymce();
        setFocused(findEditor(document.activeElement));
      }
    }, 0);
  });
  hookTinymce();
  var hookTimer = setInterval(hookTinymce, 1000);

  // ---- protocol ------------------------------------------------------------------------------------
  var send = null; // set while connected
  var done = new Map(); // request_id → result: a retried request is answered, never inserted twice

  function emit(message) {
    if (send) send(message);
  }
  function notifyPage(detail) {
    document.dispatchEvent(new CustomEvent('ambient-editor-bridge', { detail: detail }));
    listeners.forEach(function (fn) { try { fn(detail); } catch (e) { /* a listener's bug is its own */ } });
  }
  function hello() {
    var active = document.activeElement && findEditor(document.activeElement);
    if (active) focused = active;
    return {
      type: 'hello',
      client: window.__ambientEditorBridgeClient || 'userscript',
      version: VERSION,
      page_origin: location.origin,
      editors: inventory(),
      focused: focused ? focused.info.id : null,
    };
  }

  function handleInsert(message) {
    var id = String(message.request_id || '');
    if (done.has(id)) return Object.assign({}, done.get(id), { duplicate: true });
    var result;
    if (!focused) {
      result = { type: 'insert_result', request_id: id, ok: false, adapter: '', editor_id: '', error: 'no editor has focus' };
    } else {
      try {
        if (focused.handle.nodeType === 1 && !focused.handle.isConnected) throw new Error('editor left the page');
        var hasCaret = touched.has(keyOf(focused));
        var r = focused.adapter.insert(focused.handle, String(message.text || ''), String(message.html || ''), hasCaret);
        result = {
          type: 'insert_result', request_id: id, ok: true, adapter: focused.info.adapter, editor_id: focused.info.id,
          inserted_chars: r.inserted_chars, where: r.where, undo_steps: r.undo_steps,
        };
        done.set(id, result);
      } catch (e) {
        result = {
          type: 'insert_result', request_id: id, ok: false, adapter: focused.info.adapter, editor_id: focused.info.id,
          error: String((e && e.message) || e).slice(0, 200),
        };
      }
    }
    notifyPage({ type: 'inserted', result: result });
    return result;
  }

  function receive(message) {
    if (!message || typeof message !== 'object') return;
    if (message.type === 'insert') emit(handleInsert(message));
    else if (message.type === 'encounter_ack') notifyPage(message);
    else if (message.type === 'bridge_status') {
      if (message.ok) emit(hello());
      notifyPage({ type: 'status', connected: !!message.ok, reason: message.reason || '' });
    }
  }

  // ---- transports ------------------------------------------------------------------------------------
  // Userscript: straight to the loopback WebSocket; the token travels as a subprotocol because a
  // browser WebSocket cannot set headers.
  function connectWebSocket(config) {
    var url = config.url || 'ws://127.0.0.1:' + (config.port || 47615);
    var delay = 500;
    function open() {
      var ws;
      try {
        ws = new WebSocket(url, [PROTOCOL, TOKEN_PREFIX + config.token]);
      } catch (e) {
        setTimeout(open, delay);
        return;
      }
      ws.onopen = function () {
        delay = 500;
        send = function (m) { if (ws.readyState === 1) ws.send(JSON.stringify(m)); };
        receive({ type: 'bridge_status', ok: true });
      };
      ws.onmessage = function (event) {
        try { receive(JSON.parse(event.data)); } catch (e) { /* not ours */ }
      };
      ws.onclose = function (event) {
        send = null;
        notifyPage({ type: 'status', connected: false, code: event.code });
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 4000);
      };
    }
    open();
  }

  // Extension: postMessage to the isolated-world relay (relay.js), which holds a port to the
  // service worker, which holds the WebSocket and the token. The token never enters the page.
  function connectRelay() {
    window.__ambientEditorBridgeClient = 'extension';
    var relaySend = function (m) { window.postMessage({ channel: RELAY_CHANNEL, dir: 'to-agent', msg: m }, location.origin); };
    window.addEventListener('message', function (event) {
      var data = event.data;
      if (event.source !== window || !data || data.channel !== RELAY_CHANNEL || data.dir !== 'to-page') return;
      var msg = data.msg;
      if (msg && msg.type === 'bridge_status') {
        send = msg.ok ? relaySend : null;
        receive({ type: 'bridge_status', ok: msg.ok, reason: msg.reason });
        return;
      }
      receive(msg);
    });
    setInterval(function () { if (send) send({ type: 'ping' }); }, 20000); // keeps the MV3 worker awake
  }

  function encounter(action) {
    if (action !== 'start' && action !== 'stop') throw new Error("action must be 'start' or 'stop'");
    if (!send) return false;
    send({ type: 'encounter', action: action });
    return true;
  }
  document.addEventListener('ambient-encounter', function (event) {
    if (event.detail && event.detail.action) encounter(event.detail.action);
  });

  window.__ambientEditorBridge = Object.freeze({
    version: VERSION,
    connectWebSocket: connectWebSocket,
    connectRelay: connectRelay,
    encounter: encounter,
    connected: function () { return !!send; },
    focusedEditor: function () { return focused ? focused.info : null; },
    editors: inventory,
    onEvent: function (fn) { listeners.push(fn); },
    stop: function () { clearInterval(hookTimer); },
  });
})();
