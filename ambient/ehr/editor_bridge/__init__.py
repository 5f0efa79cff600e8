"""The editor bridge: a loopback WebSocket between the agent and a script in the EHR's page that
inserts the draft at the clinician's caret in TinyMCE, CKEditor 5, Quill, a textarea or any
contenteditable. The browser side lives in ``extension/`` (a Manifest V3 extension, and the same
core as a userscript built by :func:`ambient.ehr.editor_bridge.assets.build_userscript`)."""
