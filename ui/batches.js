/* The batches list: GET /batches a page at a time; the filters narrow the page shown. */
"use strict";
(() => {
    const { call, el, stateBadge, text, poll } = LivyUI;
    const PAGE = 25;
    let from = 0, total = 0, last = null;
    const stateSel = document.getElementById("filter-state");
    const ownerIn = document.getElementById("filter-owner");
    const body = document.querySelector("#batches tbody");

    function render() {
        if (!last) return;
        const want = stateSel.value, owner = ownerIn.value.trim();
        const rows = last.sessions.filter(b => (!want || b.state === want) && (!owner || (b.owner || "") === owner))
            .map(b => el("tr", { "data-batch": b.id },
                el("td", { class: "num" }, el("a", { href: `batch.html?id=${b.id}` }, b.id)),
                el("td", {}, text(b.name)), el("td", { "data-field": "state" }, stateBadge(b.state, "batch")),
                el("td", {}, text(b.owner)), el("td", {}, text(b.proxyUser)), el("td", {}, text(b.appId))));
        if (!rows.length)
            rows.push(el("tr", {}, el("td", { colspan: 6, class: "muted" },
                last.sessions.length ? "No batch on this page matches the filters." : "No batches.")));
        body.replaceChildren(...rows);
        total = last.total;
        const shown = last.sessions.length;
        document.getElementById("page-info").textContent = total ? `${from + 1}–${from + shown} of ${total}` : "0 of 0";
        document.getElementById("batches-caption").textContent =
            `Batches ${total ? from + 1 : 0} to ${from + shown} of ${total}, updated every 2 seconds`;
        document.getElementById("prev").disabled = from === 0;
        document.getElementById("next").disabled = from + PAGE >= total;
    }

    async function refresh() {
        last = await call("GET", `/batches?from=${from}&size=${PAGE}`);
        render();
    }

    document.getElementById("prev").addEventListener("click", () => { from = Math.max(0, from - PAGE); refresh(); });
    document.getElementById("next").addEventListener("click", () => { if (from + PAGE < total) { from += PAGE; refresh(); } });
    stateSel.addEventListener("change", render);
    ownerIn.addEventListener("input", render);
    document.getElementById("filters").addEventListener("submit", e => e.preventDefault());
    poll(refresh);
})();
