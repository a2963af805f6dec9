/* The operations dashboard: follows <prefix>/_dashboard/stream (one snapshot
 * every two seconds) and renders it. No dependencies, no build step. */
(function () {
  "use strict";
  var view = { sort: "heartbeat", order: "asc", page: 1 };
  var source = null;
  var last = null;

  function $(id) { return document.getElementById(id); }

  function text(el, value) { el.textContent = String(value); }

  function connect() {
    if (source) source.close();
    var query = "sort=" + view.sort + "&order=" + view.order + "&page=" + view.page;
    source = new EventSource("_dashboard/stream?" + query);
    source.onopen = function () { text($("status"), "live"); };
    source.onerror = function () { text($("status"), "reconnecting…"); };
    source.onmessage = function (message) {
      var snapshot = JSON.parse(message.data);
      if (snapshot.error) { text($("status"), "Redis unavailable"); return; }
      last = snapshot;
      render(snapshot);
    };
  }

  function render(s) {
    text($("updated"), "as of " + new Date(s.at).toLocaleTimeString());
    ["active", "completed", "failed", "orphaned", "cancelled", "oom"].forEach(function (name) {
      text($("count-" + name), s.counts[name]);
    });
    renderMemory(s.redis);
    renderWorkers(s.workers);
    renderStreams(s.streams, s.staleThresholdMs);
    renderSweep(s.sweep);
    var minutes = s.history;
    chart($("chart-events"), minutes.map(function (m) { return m.events / 60; }));
    chart($("chart-connects"), minutes.map(function (m) { return m.connects / 60; }));
    chart($("chart-orphans"), minutes.map(function (m) { return m.orphaned; }));
  }

  function cell(row, value, title) {
    var td = document.createElement("td");
    td.textContent = String(value);
    if (title) td.title = title;
    row.appendChild(td);
    return td;
  }

  function renderWorkers(workers) {
    var body = $("workers").tBodies[0];
    body.replaceChildren();
    workers.forEach(function (w) {
      var row = document.createElement("tr");
      cell(row, w.worker);
      cell(row, w.clients);
      body.appendChild(row);
    });
  }

  function renderStreams(streams, staleMs) {
    var body = $("streams").tBodies[0];
    body.replaceChildren();
    streams.rows.forEach(function (r) {
      var row = document.createElement("tr");
      row.className = "health-" + r.health;
      row.dataset.streamId = r.id;
      var id = cell(row, r.id.length > 8 ? r.id.slice(0, 8) + "…" : r.id, r.id);
      id.style.fontFamily = "monospace";
      cell(row, r.owner);
      cell(row, r.type);
      cell(row, r.ageS.toFixed(0) + " s");
      cell(row, r.silentS.toFixed(1) + " s", "stale after " + staleMs / 1000 + " s");
      cell(row, r.connections);
      cell(row, r.events);
      body.appendChild(row);
    });
    var pages = Math.max(1, Math.ceil(streams.total / streams.perPage));
    text($("total"), "(" + streams.total + ")");
    text($("page"), "page " + streams.page + " of " + pages);
    $("prev").disabled = streams.page <= 1;
    $("next").disabled = streams.page >= pages;
    Array.prototype.forEach.call($("streams").tHead.rows[0].cells, function (th) {
      th.classList.toggle("sorted", th.dataset.sort === streams.sort);
      th.classList.toggle("desc", th.dataset.sort === streams.sort && streams.desc);
    });
  }

  function size(bytes) {
    var units = ["B", "KiB", "MiB", "GiB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return (i ? bytes.toFixed(1) : String(bytes)) + " " + units[i];
  }

  /* Used of maxmemory (with the share when there is a limit), the policy on
   * hover; marked when Redis refuses writes. */
  function renderMemory(redis) {
    var el = $("redis-memory");
    if (!redis || redis.used === null) { text(el, "unknown"); el.title = "INFO refused"; return; }
    var shown = size(redis.used);
    if (redis.max) shown += " of " + size(redis.max) + " (" + Math.round(100 * redis.used / redis.max) + "%)";
    text(el, shown + (redis.full ? ", full" : ""));
    el.title = "maxmemory-policy " + redis.policies.join(", ");
    el.classList.toggle("full", redis.full);
  }

  function renderSweep(sweep) {
    if (!sweep) { text($("sweep"), "no sweep yet"); return; }
    text($("sweep"), "sweep #" + sweep.sweep + ", " + sweep.agoS.toFixed(0) + " s ago by " +
      sweep.worker + ": orphaned " + sweep.orphaned + ", pruned " + sweep.pruned +
      ", " + sweep.ms + " ms");
  }

  /* Bars, one per minute, scaled to the largest; the newest on the right. */
  function chart(svg, values) {
    var ns = "http://www.w3.org/2000/svg";
    var top = Math.max.apply(null, values.concat([0]));
    svg.replaceChildren();
    var width = 300 / Math.max(1, values.length);
    values.forEach(function (v, i) {
      var h = top > 0 ? (v / top) * 48 : 0;
      var bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", String(i * width + 1));
      bar.setAttribute("y", String(58 - h));
      bar.setAttribute("width", String(Math.max(1, width - 2)));
      bar.setAttribute("height", String(h));
      var title = document.createElementNS(ns, "title");
      title.textContent = v.toFixed(2);
      bar.appendChild(title);
      svg.appendChild(bar);
    });
    var label = document.createElementNS(ns, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", "9");
    label.textContent = "max " + (top >= 10 ? top.toFixed(0) : top.toFixed(2));
    svg.appendChild(label);
  }

  Array.prototype.forEach.call(document.querySelectorAll("th[data-sort]"), function (th) {
    th.addEventListener("click", function () {
      var same = view.sort === th.dataset.sort;
      view.order = same && view.order === "asc" ? "desc" : "asc";
      view.sort = th.dataset.sort;
      view.page = 1;
      connect();
    });
  });
  $("prev").addEventListener("click", function () { view.page -= 1; connect(); });
  $("next").addEventListener("click", function () { view.page += 1; connect(); });
  window.sseDashboard = { view: view, last: function () { return last; } };
  connect();
})();
