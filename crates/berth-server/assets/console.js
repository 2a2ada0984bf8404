// berth console: the little behaviour htmx does not cover. Hand-written, no build step, no
// inline handlers (the Content-Security-Policy allows only same-origin script files).
// Everything here is an enhancement: every page works without it.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="#id" hidden>Copy</button> copies the text of #id.
  // They are rendered hidden and shown only when script runs (without it, select and copy).
  function revealCopyButtons(root) {
    root.querySelectorAll("button[data-copy][hidden]").forEach(function (b) {
      b.hidden = false;
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP origins have no clipboard API: select a scratch textarea and copy it.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(area);
      if (ok) resolve();
      else reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    event.preventDefault();
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = "value" in source && source.tagName !== "PRE" ? source.value : source.textContent;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    var status = document.getElementById(button.getAttribute("aria-describedby") || "");
    copyText(text).then(
      function () {
        button.textContent = "Copied";
        if (status) status.textContent = "Copied to the clipboard.";
      },
      function () {
        button.textContent = "Press Ctrl+C";
        if (window.getSelection && document.createRange) {
          var range = document.createRange();
          range.selectNodeContents(source);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        }
      }
    );
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  });

  // Followed logs: keep the newest line in view unless the reader scrolled up.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var pane = event.target.closest("[data-follow]");
    if (!pane) return;
    pane.setAttribute(
      "data-at-end",
      pane.scrollHeight - pane.scrollTop - pane.clientHeight < 24 ? "1" : "0"
    );
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    var pane = event.target.closest("[data-follow]");
    if (pane && pane.getAttribute("data-at-end") !== "0") pane.scrollTop = pane.scrollHeight;
  });
  // When the server ends a stream, say so where the stream was shown.
  document.addEventListener("htmx:sseClose", function (event) {
    var note = event.target.querySelector("[data-stream-state]");
    if (note && event.detail && event.detail.type === "message") {
      note.textContent = note.getAttribute("data-stream-state");
    }
  });

  function init() {
    revealCopyButtons(document);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  document.addEventListener("htmx:load", function (event) {
    revealCopyButtons(event.target);
  });
})();
