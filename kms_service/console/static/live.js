// The live requests table: polls the console's own feed and prepends new rows. No inline
// script anywhere (the Content-Security-Policy forbids it); this file is all the JS there is.
(function () {
  "use strict";
  var table = document.getElementById("requests-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var feed = table.getAttribute("data-feed");
  var seen = {};
  var newest = 0;
  Array.prototype.forEach.call(body.rows, function (row) {
    var id = row.getAttribute("data-request-id");
    if (id) { seen[id] = true; newest = Math.max(newest, parseFloat(row.getAttribute("data-at")) || 0); }
  });
  var filters = new URLSearchParams(window.location.search);

  function cell(row, text, className) {
    var td = row.insertCell(-1);
    if (className) { td.className = className; }
    td.textContent = text;
    return td;
  }

  function addRow(entry) {
    var empty = body.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var row = body.insertRow(0);
    row.setAttribute("data-request-id", entry.requestId);
    row.setAttribute("data-at", String(entry.at));
    row.className = "fresh" + (entry.refused ? " refused" : "");
    var timeCell = row.insertCell(-1);
    var link = document.createElement("a");
    link.href = entry.url;
    link.textContent = entry.time + " UTC";
    timeCell.appendChild(link);
    cell(row, entry.principal);
    cell(row, entry.operation);
    cell(row, entry.key ? entry.key.split("/").pop() : "", "mono");
    var result = cell(row, "");
    if (entry.refused) {
      var strong = document.createElement("strong");
      strong.textContent = "refused: " + entry.result;
      result.appendChild(strong);
    } else {
      result.textContent = "OK";
    }
  }

  function poll() {
    var params = new URLSearchParams(filters);
    // Workers flush on their own schedule: look a little back, and skip rows already shown.
    params.set("since", String(Math.max(0, newest - 5)));
    fetch(feed + "?" + params.toString(), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var fresh = data.entries.filter(function (e) { return !seen[e.requestId]; });
        fresh.sort(function (a, b) { return a.at - b.at; });
        fresh.forEach(function (entry) {
          seen[entry.requestId] = true;
          newest = Math.max(newest, entry.at);
          addRow(entry);
        });
        if (fresh.length && status) {
          status.textContent = "Live: " + fresh.length + " new request(s) at " + new Date().toLocaleTimeString() + ".";
        }
      })
      .catch(function (error) {
        if (status) { status.textContent = "Live updates paused: " + error.message; }
      })
      .then(function () { window.setTimeout(poll, 1000); });
  }
  window.setTimeout(poll, 1000);
}());
