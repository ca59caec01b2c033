// The dashboard's charts (api/templates/dashboard.html): reads the JSON data block the server
// rendered (exact decimal strings) and draws them with the vendored Chart.js. Numbers here only
// place bars and lines; the tables beside the charts print the exact figures.
(function () {
  "use strict";
  var block = document.getElementById("dashboard-data");
  if (!block || typeof Chart === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var PASS = "#1a7f37", FAIL = "#c62828", BAR = "#4e79a7", LINE = "#f28e2b", THRESHOLD = "#6a1b9a";
  var yuanShort = new Intl.NumberFormat("en-US", {notation: "compact", maximumFractionDigits: 1});
  // Growth from a tiny first year (thousands of %) would flatten every other year and the
  // threshold onto the zero line: the axis stops at the largest growth up to this, or twice
  // the threshold; a point beyond it is off the scale (said in the subtitle; the table has it).
  var GROWTH_AXIS_LIMIT_PCT = 300;

  Chart.defaults.font.size = 13;
  Chart.defaults.color = "#222";
  Chart.defaults.animation = false;  // drawn at once: what a screenshot or a reader sees is final
  Chart.defaults.maintainAspectRatio = false;

  function num(text) { return text === null ? null : Number(text); }
  // A ratio string (6 places) as a percentage of 4 places: 0.57 * 100 is 56.99999999999999 in
  // floating point, so round to the places the ratio has (for placing and labelling only).
  function pct(text) { return text === null ? null : Math.round(Number(text) * 1e6) / 1e4; }
  function same(value, n) { var out = []; for (var i = 0; i < n; i++) { out.push(value); } return out; }
  function marks(passes) {
    return {
      pointStyle: passes.map(function (p) { return p === false ? "crossRot" : "circle"; }),
      pointRadius: passes.map(function (p) { return p === null ? 3 : 7; }),
      pointBorderWidth: passes.map(function (p) { return p === false ? 3 : 1; }),
      pointBackgroundColor: passes.map(function (p) { return p === null ? LINE : (p ? PASS : FAIL); }),
      pointBorderColor: passes.map(function (p) { return p === null ? LINE : (p ? PASS : FAIL); })
    };
  }
  function thresholdSet(threshold, n, axis) {
    if (!threshold) { return []; }
    return [{type: "line", label: "threshold " + threshold.comparator + " " + pct(threshold.ratio) + "%",
             data: same(pct(threshold.ratio), n), yAxisID: axis, borderColor: THRESHOLD,
             borderDash: [8, 5], borderWidth: 3, pointRadius: 0, order: 0}];
  }
  function growthTop(values, threshold) {
    var top = Math.max(10, threshold ? 2 * pct(threshold.ratio) : 0);
    values.forEach(function (v) { if (v !== null && v <= GROWTH_AXIS_LIMIT_PCT) { top = Math.max(top, v); } });
    return Math.ceil(top * 1.15 / 10) * 10;
  }
  function growthChart(id, title, barLabel, bars, barAxisTitle, tick, growth, threshold, passes) {
    var t = data.targets, n = t.years.length;
    var top = growthTop(growth.map(pct), threshold);
    var off = growth.map(pct).filter(function (v) { return v !== null && v > top; }).length;
    var growthSet = Object.assign({type: "line", label: barLabel + " growth (%)", data: growth.map(pct),
                                   yAxisID: "growth", borderColor: LINE, borderWidth: 2, order: 1}, marks(passes));
    return new Chart(document.getElementById(id), {
      data: {labels: t.years, datasets: [
        {type: "bar", label: barLabel, data: bars, yAxisID: "value", backgroundColor: BAR, order: 2},
        growthSet].concat(thresholdSet(threshold, n, "growth"))},
      options: {
        plugins: {title: {display: true, text: title, font: {size: 15}},
                  subtitle: {display: off > 0, text: "growth above " + top + "% is off the scale: see the table"},
                  legend: {position: "bottom"}},
        scales: {
          x: {title: {display: true, text: "year"}},
          value: {position: "left", beginAtZero: true, grace: "8%", title: {display: true, text: barAxisTitle},
                  ticks: {callback: tick}},
          growth: {position: "right", suggestedMin: 0, max: top, title: {display: true, text: "growth (%)"},
                   grid: {drawOnChartArea: false},
                   ticks: {callback: function (v) { return v + "%"; }}}
        }
      }
    });
  }

  var t = data.targets;
  if (t) {
    growthChart("chart-amount", "Amount lent per year (yuan) and its growth", "amount (yuan)",
                t.amount.map(num), "amount (yuan)", function (v) { return yuanShort.format(v); },
                t.amount_growth, t.thresholds.amount_growth, t.passes.amount_growth);
    growthChart("chart-count", "Loans per year and their growth", "loans", t.count, "loans (count)",
                function (v) { return Number.isInteger(v) ? v : ""; },
                t.count_growth, t.thresholds.count_growth, t.passes.count_growth);
    var sme = t.passes.sme_share_count;
    new Chart(document.getElementById("chart-sme"), {
      data: {labels: t.years, datasets: [
        {type: "bar", label: "SME share by count (%)", data: t.sme_share_count.map(pct), yAxisID: "share",
         backgroundColor: sme.map(function (p) { return p === null ? BAR : (p ? PASS : FAIL); }), order: 2}
      ].concat(thresholdSet(t.sme_line, t.years.length, "share"))},
      options: {
        plugins: {title: {display: true, text: "SME share of loans (by count) against its line", font: {size: 15}},
                  legend: {position: "bottom"}},
        scales: {x: {title: {display: true, text: "year"}},
                 share: {min: 0, max: 100, title: {display: true, text: "share (%)"},
                         ticks: {callback: function (v) { return v + "%"; }}}}
      }
    });
  }

  var losses = data.losses;
  if (losses && losses.length) {
    new Chart(document.getElementById("chart-losses"), {
      type: "bar",
      data: {labels: losses.map(function (l) { return l.institution + " (" + l.role + ")"; }),
             datasets: [{label: "loss borne (yuan)", data: losses.map(function (l) { return num(l.amount); }),
                         backgroundColor: BAR}]},
      options: {indexAxis: "y",
                plugins: {title: {display: true, text: "Loss borne on live claims, by party (yuan)", font: {size: 15}},
                          legend: {display: false}},
                scales: {x: {beginAtZero: true, title: {display: true, text: "yuan"},
                             ticks: {callback: function (v) { return yuanShort.format(v); }}}}}
    });
  }
  // Pool stress tests: per programme, the exhaustion curve (% by simulated year) and the fund
  // payout histogram (scenarios per bin); the tables beside them print the exact figures.
  (data.stress || []).forEach(function (run) {
    new Chart(document.getElementById("chart-stress-exhaustion-" + run.program), {
      type: "line",
      data: {labels: run.years, datasets: [{label: "fund exhausted by the year's end (%)",
             data: run.exhaustion_probability.map(pct), borderColor: FAIL, backgroundColor: FAIL,
             borderWidth: 2, pointRadius: 4}]},
      options: {plugins: {title: {display: true, text: run.program + ": probability the fund runs dry", font: {size: 15}},
                          legend: {position: "bottom"}},
                scales: {x: {title: {display: true, text: "simulated year"}},
                         y: {min: 0, suggestedMax: 10, title: {display: true, text: "probability (%)"},
                             ticks: {callback: function (v) { return v + "%"; }}}}}
    });
    new Chart(document.getElementById("chart-stress-payout-" + run.program), {
      type: "bar",
      data: {labels: run.payout_from.map(function (from, i) {
               return yuanShort.format(num(from)) + "–" + yuanShort.format(num(run.payout_to[i])); }),
             datasets: [{label: "scenarios", data: run.payout_count, backgroundColor: BAR}]},
      options: {plugins: {title: {display: true, text: run.program + ": fund payout over the horizon (yuan)", font: {size: 15}},
                          legend: {display: false}},
                scales: {x: {title: {display: true, text: "fund payout (yuan)"}},
                         y: {beginAtZero: true, title: {display: true, text: "scenarios"},
                             ticks: {callback: function (v) { return Number.isInteger(v) ? v : ""; }}}}}
    });
  });
  document.body.setAttribute("data-charts-ready", "true");
}());
