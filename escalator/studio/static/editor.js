// The YAML editor: CodeMirror 5 (shipped in vendor/), problems from the studio's check
// (the same as `escalator rules check`) marked on their lines as you type.
(function () {
  "use strict";
  var form = document.getElementById("file-form");
  var area = document.getElementById("text");
  if (!form || !area || !window.CodeMirror) { return; }
  var name = form.getAttribute("data-file");
  var url = form.getAttribute("data-check");
  function lint(text, updateLinting) {
    fetch(url, {method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRF-Token": window.studioToken()},
                body: JSON.stringify({file: name, text: text})})
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        var marks = [], list = document.getElementById("problems");
        list.textContent = "";
        var add = function (p, severity) {
          if (p.file !== name) { return; }
          var line = Math.max((p.line || 1) - 1, 0);
          marks.push({from: CodeMirror.Pos(line, 0), to: CodeMirror.Pos(line, 200),
                      message: p.message, severity: severity});
          var item = document.createElement("p");
          item.className = severity === "error" ? "problem" : "warn";
          item.textContent = (severity === "error" ? "" : "Warning, ") + "line " + (p.line || "?") + ": " + p.message;
          list.appendChild(item);
        };
        answer.problems.forEach(function (p) { add(p, "error"); });
        answer.warnings.forEach(function (p) { add(p, "warning"); });
        var others = answer.problems.filter(function (p) { return p.file !== name; });
        if (others.length) {
          var o = document.createElement("p"); o.className = "problem";
          o.textContent = "Other files have problems: " + others.map(function (p) { return p.file + (p.line ? ":" + p.line : "") + " " + p.message; }).join("; ");
          list.appendChild(o);
        }
        if (answer.ok && !answer.warnings.length) {
          var ok = document.createElement("p"); ok.className = "ok-text"; ok.textContent = "No problems.";
          list.appendChild(ok);
        }
        updateLinting(marks);
      });
  }
  var editor = CodeMirror.fromTextArea(area, {
    mode: "yaml", lineNumbers: true, indentUnit: 2, tabSize: 2, readOnly: area.readOnly,
    // Tab indents; Esc leaves the editor, so a keyboard user is never trapped in it.
    extraKeys: {Tab: function (cm) { cm.replaceSelection("  "); }, "Shift-Tab": "indentLess",
                Esc: function () { var b = form.querySelector("button"); if (b) { b.focus(); } }},
    gutters: ["CodeMirror-lint-markers"],
    lint: {getAnnotations: lint, async: true, delay: 300},
    screenReaderLabel: "The YAML text of " + name
  });
  form.addEventListener("submit", function () { editor.save(); });
})();
