/* The supervisors: ui/api/supervisors (host, capacity, live sessions and batches, heartbeat). */
"use strict";
(() => {
    const { call, el, duration, poll } = LivyUI;
    const body = document.querySelector("#supervisors tbody");
    poll(async () => {
        const r = await call("GET", "/ui/api/supervisors");
        const rows = r.supervisors.map(s => el("tr", { "data-supervisor": s.id },
            el("td", { class: "num" }, s.id), el("td", {}, s.host), el("td", { class: "num" }, s.pid),
            el("td", {}, el("span", { class: `state state-${s.stopped ? "dead" : "idle"}` }, s.stopped ? "stopped" : "running")),
            el("td", { class: "num" }, s.capacity), el("td", { class: "num" }, s.sessions),
            el("td", { class: "num" }, s.batches),
            el("td", { class: "num", "data-field": "heartbeat" }, s.stopped ? "—" : duration(s.heartbeatAgeMs)),
            el("td", { class: "num" }, duration((s.stopped || r.now) - s.started))));
        if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No supervisor has run in the last hour.")));
        body.replaceChildren(...rows);
    });
})();
