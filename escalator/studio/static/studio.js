// escalator studio: small conveniences over plain forms (everything works without them).
(function () {
  "use strict";
  function token() {
    var field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }
  window.studioToken = token;

  // Ask before deleting.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  // The rule form: checked as you type, problems next to their row, the sentence kept up.
  var form = document.getElementById("rule-form");
  if (form && form.getAttribute("data-check")) {
    var timer = null, docs = {};
    form.querySelectorAll("select[name^=fact-] option").forEach(function (o) {
      docs[o.value] = o.getAttribute("data-doc") || "";
    });
    var check = function () {
      var body = new FormData(form);
      fetch(form.getAttribute("data-check"), {method: "POST", body: body,
            headers: {"X-CSRF-Token": token()}, credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (answer) {
          form.querySelectorAll(".row-problem").forEach(function (cell) { cell.textContent = ""; });
          answer.rows.forEach(function (p) {
            var cell = document.getElementById("problem-" + p.row);
            if (cell) {
              var span = document.createElement("span");
              span.className = "problem"; span.textContent = p.message; cell.appendChild(span);
            }
          });
          var general = document.getElementById("general");
          general.textContent = "";
          answer.general.forEach(function (text) {
            var p = document.createElement("p"); p.className = "problem"; p.textContent = text;
            general.appendChild(p);
          });
          if (answer.ok && !answer.general.length) {
            var ok = document.createElement("p"); ok.className = "ok-text"; ok.id = "check-ok";
            ok.textContent = "No problems: the rules pass the check.";
            general.appendChild(ok);
          }
          var sentence = document.getElementById("sentence");
          if (answer.sentence) { sentence.innerHTML = answer.sentence; }
        })
        .catch(function () { /* the server check on submit still applies */ });
    };
    form.addEventListener("input", function (event) {
      var name = event.target.name || "";
      if (name.indexOf("fact-") === 0) {
        var doc = document.getElementById(event.target.id + "-doc");
        if (doc) { doc.textContent = docs[event.target.value] || ""; }
      }
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
  }

  // A replay in progress: its bar moves, the page shows the result when done.
  var progress = document.getElementById("replay-progress");
  if (progress && document.getElementById("progress")) {
    var poll = function () {
      fetch(progress.getAttribute("data-progress"), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var bar = document.getElementById("progress");
          bar.max = p.total || 1; bar.value = p.done;
          document.getElementById("progress-text").textContent = p.done + " of " + p.total;
          if (p.status === "running" || p.status === "waiting") { setTimeout(poll, 400); }
          else { window.location.reload(); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 300);
  }
})();
