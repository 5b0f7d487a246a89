// The console's only script: upload progress, select/deselect all, confirmations and the
// auto-refresh of a running reload. Every page works without it (plain forms and links).
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function boxes(name) {
    return Array.prototype.slice.call(
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]'));
  }

  function updateCount(name) {
    var chosen = boxes(name).filter(function (b) { return b.checked; }).length;
    document.querySelectorAll('[data-selected-count="' + name + '"]').forEach(function (el) {
      el.textContent = chosen + " selected";
    });
    document.querySelectorAll('[data-select-all="' + name + '"]').forEach(function (all) {
      var total = boxes(name).length;
      all.checked = total > 0 && chosen === total;
      all.indeterminate = chosen > 0 && chosen < total;
    });
  }

  // Select all / deselect all: a header checkbox, or buttons with data-select="<name>".
  document.querySelectorAll("[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    all.addEventListener("change", function () {
      boxes(name).forEach(function (b) { b.checked = all.checked; });
      updateCount(name);
    });
    updateCount(name);
  });
  document.querySelectorAll("[data-select]").forEach(function (button) {
    var name = button.getAttribute("data-select");
    button.addEventListener("click", function () {
      var on = button.getAttribute("data-value") === "all";
      boxes(name).forEach(function (b) { b.checked = on; });
      updateCount(name);
    });
  });
  document.addEventListener("change", function (event) {
    var t = event.target;
    if (t && t.type === "checkbox" && t.name && !t.hasAttribute("data-select-all")) {
      updateCount(t.name);
    }
  });

  // Confirmations: a button or form with data-confirm="<question>".
  document.addEventListener("click", function (event) {
    var el = event.target.closest && event.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { event.preventDefault(); }
  });

  // "Go back" links on error pages.
  document.querySelectorAll("[data-back]").forEach(function (a) {
    if (window.history.length > 1) {
      a.addEventListener("click", function (event) { event.preventDefault(); window.history.back(); });
    }
  });

  // Schema rows: add and remove.
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var body = document.querySelector("#" + button.getAttribute("data-add-row") + " tbody");
    button.addEventListener("click", function () {
      var last = body.querySelector("tr:last-child");
      var row = last.cloneNode(true);
      row.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      row.querySelectorAll("select").forEach(function (s) { s.selectedIndex = 0; });
      body.appendChild(row);
      row.querySelector("input").focus();
    });
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-remove-row]");
    if (!button) { return; }
    var row = button.closest("tr");
    if (row.parentNode.children.length > 1) { row.remove(); }
    else { row.querySelectorAll("input").forEach(function (i) { i.value = ""; }); }
  });

  // Something running: reload the page every N seconds until it has ended (the server renders
  // the element only while something runs). Never while the person is typing or choosing in a
  // form on the page: their input would be lost.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    var seconds = parseFloat(refresh.getAttribute("data-refresh")) || 3;
    var touched = false;
    document.addEventListener("input", function () { touched = true; });
    var tick = function () {
      var active = document.activeElement;
      var busy = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
      if (touched || busy) { window.setTimeout(tick, seconds * 1000); return; }
      window.location.reload();
    };
    window.setTimeout(tick, seconds * 1000);
  }

  // Upload Data: send with XMLHttpRequest to show progress; the server answers JSON.
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var input = form.querySelector('input[type="file"]');
    var chosen = form.querySelector("[data-chosen]");
    var progress = form.querySelector("[data-progress]");
    var bar = form.querySelector("[data-bar]");
    var text = form.querySelector("[data-progress-text]");
    var problem = form.querySelector("[data-upload-error]");
    var submit = form.querySelector('button[type="submit"]');
    function size(n) {
      if (n < 1024) { return n + " B"; }
      if (n < 1048576) { return (n / 1024).toFixed(1) + " KB"; }
      return (n / 1048576).toFixed(1) + " MB";
    }
    var zone = form.querySelector(".drop");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("over"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    });
    input.addEventListener("change", function () {
      chosen.innerHTML = "";
      Array.prototype.forEach.call(input.files, function (f) {
        var li = document.createElement("li");
        li.textContent = f.name + " (" + size(f.size) + ")";
        chosen.appendChild(li);
      });
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.files.length) { return; }
      var xhr = new XMLHttpRequest();
      // The streaming route, which passes the body straight on to the reload API.
      xhr.open("POST", form.getAttribute("data-upload") || form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      problem.hidden = true;
      progress.hidden = false;
      submit.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) { return; }
        var percent = Math.round((e.loaded / e.total) * 100);
        bar.style.width = percent + "%";
        text.textContent = percent + "% · " + size(e.loaded) + " of " + size(e.total);
      });
      xhr.upload.addEventListener("load", function () {
        text.textContent = "Stored in the landing zone…";
      });
      xhr.addEventListener("load", function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = {}; }
        if (xhr.status >= 200 && xhr.status < 300 && answer.next) {
          window.location.assign(answer.next);
          return;
        }
        submit.disabled = false;
        progress.hidden = true;
        problem.textContent = answer.message || ("Upload failed (HTTP " + xhr.status + ")");
        problem.hidden = false;
      });
      xhr.addEventListener("error", function () {
        submit.disabled = false;
        problem.textContent = "The upload did not reach the console: check the connection.";
        problem.hidden = false;
      });
      xhr.send(new FormData(form));
    });
  });
})();
