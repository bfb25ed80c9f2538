"use strict";
// The UI's only script. Values from the server are inserted with textContent or given to uPlot as
// numbers and labels: nothing a user, a model or a dataset wrote is ever parsed as HTML here.
(function () {
  var PALETTE = ["#4f6bed", "#d9480f", "#2b8a3e", "#ae3ec9", "#1098ad", "#e8590c", "#5c7cfa", "#c2255c",
    "#5f3dc4", "#087f5b", "#f08c00", "#364fc7"];

  function note(figure, text) {
    var p = document.createElement("p");
    p.className = "muted small";
    p.textContent = text;
    figure.appendChild(p);
  }

  function caption(figure, text) {
    var c = document.createElement("figcaption");
    c.textContent = text;
    figure.appendChild(c);
  }

  function plot(figure, title, steps, series) {
    var width = Math.max(260, Math.floor(figure.getBoundingClientRect().width || 360) - 8);
    var opts = {
      width: width,
      height: figure.classList.contains("wide") ? 320 : 180,
      legend: {show: series.length <= 12},
      scales: {x: {time: false}},
      axes: [{label: "step"}, {}],
      series: [{label: "step"}].concat(series.map(function (s, i) {
        return {label: s.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: {show: steps.length < 60}};
      })),
    };
    var data = [steps].concat(series.map(function (s) { return s.values; }));
    figure.chart = new uPlot(opts, data, figure);
  }

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }

  function drawHistory(figure) {
    if (figure.dataset.drawn) return;
    figure.dataset.drawn = "1";
    var title = figure.getAttribute("data-title");
    caption(figure, title);
    getJSON(figure.getAttribute("data-history")).then(function (h) {
      if (h.count < 2 && figure.hasAttribute("data-auto")) {
        figure.remove();  // one value: the metrics table already shows it
        return;
      }
      if (h.count < 2) {
        note(figure, h.count === 1 ? "one value: " + (h.values[0] === null ? "NaN" : h.values[0]) : "no values");
        figure.classList.add("single");
        return;
      }
      plot(figure, title, h.steps, [{label: title, values: h.values}]);
      if (h.count > h.steps.length) note(figure, h.count.toLocaleString() + " values, " + h.steps.length + " drawn (downsampled on the server)");
    }).catch(function (e) { note(figure, String(e.message || e)); });
  }

  // Several runs' histories on one chart: their steps merged into one x axis, gaps where a run has none.
  function drawCompare(select) {
    var figure = document.getElementById("compare-chart");
    if (!figure) return;
    if (figure.chart) { figure.chart.destroy(); figure.chart = null; }
    figure.textContent = "";
    var runs = select.getAttribute("data-runs").split(",");
    var url = "/compare/history?key=" + encodeURIComponent(select.value) + runs.map(function (r) { return "&run=" + encodeURIComponent(r); }).join("");
    getJSON(url).then(function (h) {
      var steps = {};
      h.series.forEach(function (s) { s.steps.forEach(function (x) { steps[x] = true; }); });
      var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
      var index = {};
      xs.forEach(function (x, i) { index[x] = i; });
      var series = h.series.map(function (s) {
        var values = xs.map(function () { return null; });
        s.steps.forEach(function (x, i) { values[index[x]] = s.values[i]; });
        return {label: s.name, values: values};
      });
      if (xs.length < 2) {
        note(figure, "Each run has one value of " + h.key + " (step " + (xs[0] === undefined ? "–" : xs[0]) + "): see the metrics table below.");
        return;
      }
      plot(figure, h.key, xs, series);
    }).catch(function (e) { note(figure, String(e.message || e)); });
  }

  function updateCompareButton() {
    var button = document.getElementById("compare-button");
    if (!button) return;
    var n = document.querySelectorAll('input[name="run"][form="compare-form"]:checked').length;
    button.disabled = n < 2 || n > 100;
    button.textContent = n ? "Compare " + n + " selected" : "Compare selected";
  }

  function init(root) {
    root.querySelectorAll("figure.chart[data-history]").forEach(drawHistory);
    var select = root.querySelector ? root.querySelector("#compare-metric") : null;
    if (select && !select.dataset.bound) {
      select.dataset.bound = "1";
      select.addEventListener("change", function () { drawCompare(select); });
      drawCompare(select);
    }
    updateCompareButton();
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.matches && target.matches("button[data-chart]")) {
      var charts = document.getElementById("charts");
      var figure = document.createElement("figure");
      figure.className = "chart";
      figure.setAttribute("data-history", target.getAttribute("data-chart"));
      figure.setAttribute("data-title", target.getAttribute("data-title"));
      charts.insertBefore(figure, charts.firstChild);
      drawHistory(figure);
      target.disabled = true;
    }
    var row = target.closest ? target.closest("#results-table tr[data-row]") : null;
    if (row) {
      document.querySelectorAll("#results-table tr.selected").forEach(function (r) { r.classList.remove("selected"); });
      row.classList.add("selected");
    }
  });
  document.addEventListener("keydown", function (event) {
    var row = event.target.closest ? event.target.closest("#results-table tr[data-row]") : null;
    if (row && event.key === "Enter") row.click();
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches('input[name="run"]')) updateCompareButton();
  });
  // A key search's answer replaces the column chooser's list, and its request carried the boxes checked
  // when it left: boxes checked or unchecked since then keep the user's choice (a box checked since is
  // listed after the chosen ones, where the form then sends it and the table shows it: last).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var list = event.detail.target;
    if (!list || list.id !== "column-list") return;
    list.boxesBefore = Array.prototype.slice.call(list.querySelectorAll('input[name="col"]'));
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var list = event.detail.target;
    if (!list || list.id !== "column-list" || !list.boxesBefore) return;
    var before = list.boxesBefore, keys = list.querySelector("fieldset"), shown = {};
    list.boxesBefore = null;
    list.querySelectorAll('input[name="col"]').forEach(function (box) { shown[box.value] = box; });
    before.forEach(function (old) {
      var box = shown[old.value];
      if (!old.checked) {
        if (box) box.checked = false;
      } else if (!box || !box.checked) {
        if (box) box.closest("label").remove();
        list.insertBefore(old.closest("label"), keys);
      }
    });
  });
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.target); });
})();
