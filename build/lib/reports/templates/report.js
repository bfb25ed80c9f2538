"use strict";
// Every value from the data goes into the page with textContent: nothing a model wrote is parsed as HTML.
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var rows = data.rows, scoreNames = data.score_names, low = data.low_score, better = data.higher_is_better;
  var tbody = document.querySelector("#rows tbody");
  var filters = {};
  var sortKey = "row", sortDir = 1;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
  function hasError(r) {
    if (r.status !== "ok") return true;
    return scoreNames.some(function (n) { return r.score_status[n] === "failed"; });
  }
  // "Poor" follows each metric's direction: a low faithfulness, but a high toxicity.
  function isPoor(name, value) { return value !== null && (better[name] === false ? value >= low : value < low); }
  function isLow(r) { return scoreNames.some(function (n) { return isPoor(n, r.scores[n]); }); }
  function haystack(r) { return [r.input, r.output, r.target].join("\n").toLowerCase(); }
  rows.forEach(function (r) { r._text = haystack(r); });

  function buildRow(r) {
    var tr = el("tr");
    tr.setAttribute("data-row", r.row);
    tr.appendChild(el("td", null, r.row));
    var st = el("td"); st.appendChild(el("span", "status " + r.status, r.status)); tr.appendChild(st);
    tr.appendChild(el("td", "clip", r.input));
    var out = el("td", "clip", r.output === null ? "(no output)" : r.output);
    if (r.changed) out.appendChild(el("span", "chg", "●"));
    tr.appendChild(out);
    scoreNames.forEach(function (n) {
      var v = r.scores[n];
      var cls = "score" + (isPoor(n, v) ? " low" : "") + (r.score_status[n] === "failed" ? " err" : "");
      tr.appendChild(el("td", cls, v !== null ? fmt(v, 2) : r.score_status[n] === "failed" ? "error" : "n/a"));
    });
    tr.appendChild(el("td", "score", r.latency_ms === null ? "–" : fmt(r.latency_ms, 0) + " ms"));
    tr.appendChild(el("td", "score", r.cost_usd === null ? "–" : "$" + fmt(r.cost_usd, 5)));
    tr.addEventListener("click", function () { showDetail(r); });
    r._tr = tr;
    return tr;
  }

  function sortValue(r) {
    if (sortKey.indexOf("score:") === 0) return r.scores[sortKey.slice(6)];
    return r[sortKey];
  }
  function render() {
    var ordered = rows.slice().sort(function (a, b) {
      var x = sortValue(a), y = sortValue(b);
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
    });
    var query = document.getElementById("search").value.trim().toLowerCase();
    var shown = 0;
    var fragment = document.createDocumentFragment();
    ordered.forEach(function (r) {
      var visible = (!filters.failed || r.status === "failed") && (!filters.errors || hasError(r)) &&
        (!filters.low || isLow(r)) && (!filters.changed || r.changed) && (!query || r._text.indexOf(query) !== -1);
      if (visible) { r._tr.removeAttribute("hidden"); shown++; } else { r._tr.setAttribute("hidden", ""); }
      fragment.appendChild(r._tr);
    });
    tbody.appendChild(fragment);
    var text = "Showing " + shown + " of " + rows.length + " rows";
    if (data.total_rows > rows.length) text += " (" + data.total_rows + " in the run; see the note above)";
    document.getElementById("row-count").textContent = text;
  }

  function showDetail(r) {
    var panel = document.getElementById("detail");
    panel.querySelector("#detail-title").textContent = "Row " + r.row;
    var meta = [r.status, r.latency_ms === null ? null : fmt(r.latency_ms, 0) + " ms", r.cached ? "cached" : null,
      r.input_tokens === null ? null : r.input_tokens + " tokens in / " + r.output_tokens + " out",
      r.cost_usd === null ? null : "$" + fmt(r.cost_usd, 6), r.error].filter(Boolean).join(" · ");
    panel.querySelector(".detail-meta").textContent = meta;
    panel.querySelector(".detail-input").textContent = r.input || "";
    panel.querySelector(".detail-target").textContent = r.target === null ? "(no target)" : r.target;
    panel.querySelector(".detail-output").textContent = r.output === null ? "(no output)" : r.output;
    var contexts = panel.querySelector(".detail-contexts");
    contexts.textContent = "";
    r.contexts.forEach(function (c) { contexts.appendChild(el("li", null, c)); });
    if (!r.contexts.length) contexts.appendChild(el("li", "muted", "(none)"));
    var base = panel.querySelector(".detail-baseline");
    base.textContent = "";
    if (r.baseline) {
      base.appendChild(el("h3", null, "Baseline output"));
      base.appendChild(el("div", "text", r.baseline.output === null ? "(no output)" : r.baseline.output));
      if (r.diff) {
        var diff = el("div", "diff");
        r.diff.forEach(function (seg) {
          diff.appendChild(el("span", "seg" + (seg[0] === "-" ? " del" : seg[0] === "+" ? " ins" : ""), seg[1]));
          diff.appendChild(document.createTextNode(" "));
        });
        base.appendChild(diff);
      }
    }
    var scores = panel.querySelector(".detail-scores");
    scores.textContent = "";
    scoreNames.forEach(function (n) {
      var box = el("div", "detail-score");
      box.setAttribute("data-evaluator", n);
      var v = r.scores[n], b = r.baseline ? r.baseline.scores[n] : undefined;
      var head = n + ": " + (v === null ? "–" : fmt(v, 3)) + (b === undefined ? "" : "  (baseline " + (b === null ? "–" : fmt(b, 3)) + ")");
      box.appendChild(el("div", "name", head));
      box.appendChild(el("div", "just", r.justifications[n] || ""));
      if (r.raw[n]) {
        var details = el("details", "raw");
        details.appendChild(el("summary", null, "raw judge output"));
        details.appendChild(el("pre", null, r.raw[n]));
        box.appendChild(details);
      }
      scores.appendChild(box);
    });
    panel.removeAttribute("hidden");
  }

  document.getElementById("detail-close").addEventListener("click", function () { document.getElementById("detail").setAttribute("hidden", ""); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") document.getElementById("detail").setAttribute("hidden", ""); });
  document.querySelectorAll("button[data-filter]").forEach(function (button) {
    button.addEventListener("click", function () {
      var name = button.getAttribute("data-filter");
      filters[name] = !filters[name];
      button.setAttribute("aria-pressed", filters[name] ? "true" : "false");
      render();
    });
  });
  document.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-sort");
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      document.querySelectorAll("th[data-sort]").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(sortDir === 1 ? "asc" : "desc");
      render();
    });
  });
  var timer = null;
  document.getElementById("search").addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(render, 120); });
  rows.forEach(buildRow);
  render();
  window.__reportReady = true;
})();
