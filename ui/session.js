/* One session: its settings, its statements (updated in place: state, progress, output, a
 * cancel button while it may run) and its log, followed. Delete and cancel go through the API. */
"use strict";
(() => {
    const { call, el, stateBadge, duration, text, poll, param, renderOutput, logFollower, status } = LivyUI;
    const id = param("id");
    if (id === null || !/^\d+$/.test(id)) { status("No session id in the address (session.html?id=N)."); return; }
    document.title = `Session ${id} · mod_livy`;
    const title = document.getElementById("title");
    const settings = document.getElementById("settings");
    const stBody = document.querySelector("#statements tbody");
    const rows = new Map(); /* statement id -> {tr, cells, seen: JSON} */
    let gone = false;
    title.textContent = `Session ${id}`;

    function dl(pairs) {
        const out = [];
        for (const [k, v] of pairs) {
            out.push(el("dt", {}, k));
            out.push(el("dd", {}, v instanceof Node ? v : text(v)));
        }
        settings.replaceChildren(...out);
    }

    function list(v) { return v && v.length ? v.join(", ") : "—"; }

    function showSession(s) {
        title.replaceChildren(`Session ${s.id}${s.name ? " (" + s.name + ")" : ""} `, stateBadge(s.state));
        const conf = Object.entries(s.conf || {}).map(([k, v]) => `${k}=${v}`).join("\n");
        dl([["State", stateBadge(s.state)], ["Kind", s.kind], ["Owner", s.owner], ["Proxy user", s.proxyUser],
            ["App id", s.appId], ["Driver memory", s.driverMemory], ["Driver cores", s.driverCores || "—"],
            ["Executor memory", s.executorMemory], ["Executor cores", s.executorCores || "—"],
            ["Executors", s.numExecutors || "—"], ["Queue", s.queue], ["TTL", s.ttl], ["Idle timeout", s.idleTimeout],
            ["Heartbeat timeout", s.heartbeatTimeoutInSecond ? `${s.heartbeatTimeoutInSecond}s` : "—"],
            ["Jars", list(s.jars)], ["Python files", list(s.pyFiles)], ["Files", list(s.files)], ["Archives", list(s.archives)],
            ["Spark conf", conf ? el("pre", {}, conf) : "—"]]);
        const ui = document.getElementById("spark-ui");
        if (s.appInfo && s.appInfo.sparkUiUrl) { ui.href = s.appInfo.sparkUiUrl; ui.hidden = false; } else ui.hidden = true;
    }

    async function cancel(sid, button) {
        button.disabled = true;
        try {
            await call("POST", `/sessions/${id}/statements/${sid}/cancel`, {});
            status(`Cancel of statement ${sid} requested.`);
        } catch (e) { status(e.message); button.disabled = false; }
    }

    function statementRow(st) {
        let r = rows.get(st.id);
        if (!r) {
            const cells = {
                state: el("td", { "data-field": "state" }), progress: el("td", {}),
                duration: el("td", { class: "num" }), output: el("td", { "data-field": "output" }), action: el("td", {}),
            };
            const tr = el("tr", { "data-statement": st.id }, el("td", { class: "num" }, st.id),
                el("td", {}, el("pre", { class: "code" }, st.code)),
                cells.state, cells.progress, cells.duration, cells.output, cells.action);
            r = { tr, cells, seen: "" };
            rows.set(st.id, r);
        }
        const seen = JSON.stringify([st.state, st.progress, st.output, st.started, st.completed]);
        const running = st.state === "running" || st.state === "waiting" || st.state === "cancelling";
        if (seen !== r.seen) {
            r.seen = seen;
            r.cells.state.replaceChildren(stateBadge(st.state));
            r.cells.progress.replaceChildren(running
                ? el("progress", { max: 1, value: st.progress || 0, "aria-label": `Progress of statement ${st.id}` })
                : `${Math.round((st.progress || 0) * 100)}%`);
            r.cells.output.replaceChildren(renderOutput(st.output));
            if (st.state === "waiting" || st.state === "running") {
                if (!r.cells.action.firstChild)
                    r.cells.action.replaceChildren(el("button", {
                        type: "button", class: "secondary", "data-action": "cancel",
                        "aria-label": `Cancel statement ${st.id}`, onclick: e => cancel(st.id, e.currentTarget),
                    }, "Cancel"));
            } else r.cells.action.replaceChildren();
        }
        const end = st.completed || (st.started ? Date.now() : 0);
        r.cells.duration.textContent = st.started ? duration(end - st.started) : "—";
        return r.tr;
    }

    async function refresh() {
        if (gone) return false;
        let s;
        try { s = await call("GET", `/sessions/${id}`); }
        catch (e) {
            if (e.status === 404) {
                gone = true;
                title.textContent = `Session ${id}`;
                status(`Session ${id} is gone (deleted, or past its retain period).`);
                document.getElementById("delete").disabled = true;
                return false;
            }
            throw e;
        }
        showSession(s);
        let page;
        try { page = await call("GET", `/sessions/${id}/statements?order=desc&size=50`); }
        catch (e) {
            if (e.status !== 403) throw e;
            /* no view access: the API says so, and so does the table */
            stBody.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted", "data-denied": "" }, e.message)));
            return;
        }
        stBody.replaceChildren(...page.statements.map(statementRow));
        if (!page.statements.length) stBody.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No statements yet.")));
    }

    const logPre = document.getElementById("log");
    const followLog = logFollower(`/sessions/${id}/log`, logPre);
    document.getElementById("delete").addEventListener("click", async e => {
        const button = e.currentTarget; /* null once an await has passed */
        if (!confirm(`Delete session ${id}? Its Spark application stops.`)) return;
        button.disabled = true;
        try { await call("DELETE", `/sessions/${id}`); status(`Session ${id} deleted.`); }
        catch (err) { status(err.message); button.disabled = false; }
    });
    poll(refresh);
    poll(async () => {
        if (gone) return false;
        try { await followLog(); }
        catch (e) {
            if (e.status === 404) return false; /* gone: the other poll says so */
            if (e.status === 403) { logPre.textContent = e.message; return false; } /* no view access */
            throw e;
        }
    });
})();
