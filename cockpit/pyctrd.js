/* pyctrd's Cockpit page: containers, images, networks and jobs from the ObjectManager at
 * /org/pyctrd1, kept live by PropertiesChanged (which carry the values),
 * InterfacesAdded and InterfacesRemoved: nothing polls. The one periodic read
 * is GetStats, once a second while a container's details are open.
 *
 * A container's log comes from the Varlink socket (io.pyctrd.Container.Logs
 * with more) through a Cockpit stream channel: a web page cannot take the
 * file descriptor D-Bus's OpenLog returns. The socket is /run/pyctrd/io.pyctrd
 * unless the page's URL says ?varlink=PATH (a daemon with another run root).
 * The terminal in a container's details runs each line through Varlink's
 * io.pyctrd.Container.ExecOutput the same way, for the same reason.
 *
 * Calls go through Cockpit's administrative access ("superuser": "try"); the
 * daemon asks polkit as it does for any other caller.
 */
"use strict";

(function () {
    const BUS_NAME = "org.pyctrd1";
    const ROOT = "/org/pyctrd1";
    const CONTAINER = "org.pyctrd1.Container";
    const IMAGE = "org.pyctrd1.Image";
    const NETWORK = "org.pyctrd1.Network";
    const JOB = "org.pyctrd1.Job";
    const MANAGER = "org.pyctrd1.Manager";
    const PROPERTIES = "org.freedesktop.DBus.Properties";
    const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";
    const STATS_EVERY_MS = 1000;
    const GRAPH_POINTS = 120;
    const LOG_LINES_MAX = 5000;

    const containers = new Map(); // path → properties (plain values)
    const images = new Map();
    const networks = new Map();
    const jobs = new Map(); // a job stays a minute after it ends, then goes (InterfacesRemoved)
    const TABLES = { [CONTAINER]: containers, [IMAGE]: images, [NETWORK]: networks, [JOB]: jobs };
    let client = null;
    let details = null; // {path, logs: channel, timer, last, cpu: []}

    function varlinkSocket() {
        const query = new URLSearchParams(window.location.search).get("varlink");
        return query || (cockpit.location.options.varlink) || "/run/pyctrd/io.pyctrd";
    }

    function plain(props) {
        const out = {};
        for (const name in props)
            out[name] = props[name].v;
        return out;
    }

    function $(id) {
        return document.getElementById(id);
    }

    function problem(err) {
        const box = $("problem");
        if (!err) {
            box.hidden = true;
            return;
        }
        box.textContent = (err.message || String(err));
        box.hidden = false;
    }

    function call(path, iface, method, args, type) {
        const options = type === undefined ? {} : { type };
        return client.call(path, iface, method, args, options);
    }

    function action(promise) {
        problem(null);
        return promise.catch(problem);
    }

    /* ------------------------------------------------------------------ */
    /* the objects */

    function objectAdded(path, interfaces) {
        for (const iface in TABLES) {
            if (interfaces[iface])
                TABLES[iface].set(path, plain(interfaces[iface]));
        }
    }

    function objectRemoved(path, names) {
        if (names.indexOf(CONTAINER) >= 0) {
            containers.delete(path);
            if (details && details.path === path)
                closeDetails();
        }
        for (const iface of [IMAGE, NETWORK, JOB]) {
            if (names.indexOf(iface) >= 0)
                TABLES[iface].delete(path);
        }
    }

    function propertiesChanged(path, iface, changed) {
        const table = TABLES[iface] || null;
        const known = table && table.get(path);
        if (!known)
            return;
        const before = known.State;
        Object.assign(known, plain(changed));
        if (details && details.path === path && before !== known.State && known.State === "running")
            followLogs(); // started again: its new output
    }

    function start() {
        client = cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
        // Subscribed before the snapshot is read, so no change falls between.
        client.subscribe({ path_namespace: ROOT, interface: PROPERTIES, member: "PropertiesChanged" },
                         (path, iface, signal, args) => {
                             propertiesChanged(path, args[0], args[1]);
                             render();
                         });
        client.subscribe({ path: ROOT, interface: OBJECT_MANAGER, member: "InterfacesAdded" },
                         (path, iface, signal, args) => {
                             objectAdded(args[0], args[1]);
                             render();
                         });
        client.subscribe({ path: ROOT, interface: OBJECT_MANAGER, member: "InterfacesRemoved" },
                         (path, iface, signal, args) => {
                             objectRemoved(args[0], args[1]);
                             render();
                         });
        client.call(ROOT, OBJECT_MANAGER, "GetManagedObjects", [])
                .then(([objects]) => {
                    for (const path in objects)
                        objectAdded(path, objects[path]);
                    render();
                    document.body.setAttribute("data-loaded", "true");
                })
                .catch(problem);
        client.addEventListener("close", (event, options) => {
            problem(new Error("The connection to pyctrd closed: " + (options.problem || "")));
        });
    }

    /* ------------------------------------------------------------------ */
    /* rendering */

    function button(label, name, onclick, enabled, kind) {
        const b = document.createElement("button");
        b.className = "btn" + (kind ? " " + kind : "");
        b.textContent = label;
        b.setAttribute("data-action", name);
        b.disabled = !enabled;
        b.addEventListener("click", event => {
            event.stopPropagation();
            onclick();
        });
        return b;
    }

    function cell(row, text, className) {
        const td = document.createElement("td");
        td.textContent = text;
        if (className)
            td.className = className;
        row.appendChild(td);
        return td;
    }

    function containerRow(path, c) {
        const row = document.createElement("tr");
        row.setAttribute("data-name", c.Name);
        row.setAttribute("data-path", path);
        cell(row, c.Name, "name");
        cell(row, c.Image, "image");
        cell(row, (c.Command || []).join(" "), "command");
        cell(row, c.State, "state state-" + c.State);
        // Health: "" without a health check; starting, healthy or unhealthy with one.
        cell(row, c.Health || "", "health health-" + (c.Health || "none"));
        cell(row, String(c.RestartCount || 0), "restarts");
        cell(row, c.State === "exited" ? String(c.ExitCode) : "", "exit-code");
        const actions = cell(row, "", "actions");
        const s = c.State;
        const manage = (method, args, type) => () => action(call(path, CONTAINER, method, args, type));
        actions.appendChild(button("Start", "start", manage("Start", []),
                                   ["configured", "created", "exited"].indexOf(s) >= 0, "primary"));
        actions.appendChild(button("Stop", "stop", manage("Stop", [c.StopTimeout || 10], "u"),
                                   ["created", "running", "paused"].indexOf(s) >= 0));
        actions.appendChild(button("Restart", "restart", () => action(
            (s === "exited" ? Promise.resolve() : call(path, CONTAINER, "Stop", [c.StopTimeout || 10], "u"))
                    .then(() => call(path, CONTAINER, "Start", []))),
                                   ["running", "exited"].indexOf(s) >= 0));
        actions.appendChild(button("Pause", "pause", manage("Pause", []), s === "running"));
        actions.appendChild(button("Unpause", "unpause", manage("Unpause", []), s === "paused"));
        actions.appendChild(button("Remove", "remove", manage("Remove", [true], "b"), true, "danger"));
        row.addEventListener("click", () => openDetails(path));
        return row;
    }

    function imageRow(path, i) {
        const row = document.createElement("tr");
        row.setAttribute("data-reference", i.Reference);
        cell(row, i.Reference || "<none>", "reference");
        cell(row, (i.Id || "").substring(0, 12), "id");
        cell(row, cockpit.format_bytes(i.Size), "size");
        const actions = cell(row, "", "actions");
        actions.appendChild(button("Remove", "remove", () => action(call(path, IMAGE, "Remove", [false], "b")),
                                   true, "danger"));
        return row;
    }

    function jobRow(path, j) {
        const row = document.createElement("tr");
        row.setAttribute("data-reference", j.Reference);
        row.setAttribute("data-state", j.State);
        cell(row, j.Kind, "kind");
        cell(row, j.Reference, "reference");
        const state = cell(row, j.State, "state state-" + j.State);
        if (j.Error)
            state.title = j.Error;
        const progress = cell(row, "", "progress");
        const track = document.createElement("div");
        track.className = "progress-track";
        const bar = document.createElement("div");
        bar.className = "progress-bar";
        // Progress is -1 while the size is unknown: an empty bar, no number
        const share = j.State === "completed" ? 1 : Math.max(0, j.Progress);
        bar.style.width = (100 * share).toFixed(1) + "%";
        track.appendChild(bar);
        const label = document.createElement("span");
        label.className = "progress-text";
        label.textContent = j.Progress < 0 && j.State === "running"
            ? "…" : (100 * share).toFixed(0) + " %" +
                (j.BytesTotal ? " of " + cockpit.format_bytes(j.BytesTotal) : "");
        progress.append(track, label);
        progress.setAttribute("data-progress", String(share));
        return row;
    }

    function networkRow(path, n) {
        const row = document.createElement("tr");
        row.setAttribute("data-name", n.Name);
        cell(row, n.Name, "name");
        cell(row, n.Subnet || "", "subnet");
        cell(row, n.Gateway || "", "gateway");
        cell(row, n.Driver || "", "driver");
        // container IDs: shown by name when the page knows them
        const named = (n.Containers || []).map(id => {
            const c = containers.get(ROOT + "/container/" + id);
            return c ? c.Name : id.substring(0, 12);
        });
        cell(row, named.join(", "), "containers");
        return row;
    }

    function fill(tableId, emptyId, map, makeRow, key) {
        const body = $(tableId).querySelector("tbody");
        const rows = Array.from(map.entries()).sort((a, b) => key(a[1]).localeCompare(key(b[1])));
        body.replaceChildren(...rows.map(([path, props]) => makeRow(path, props)));
        $(emptyId).hidden = rows.length > 0;
    }

    function render() {
        fill("containers", "no-containers", containers, containerRow, c => c.Name || "");
        fill("images", "no-images", images, imageRow, i => i.Reference || i.Id || "");
        // newest job first
        fill("jobs", "no-jobs", jobs, jobRow,
             j => String(Number.MAX_SAFE_INTEGER - (j.CreatedTimestamp || 0)).padStart(20, "0"));
        fill("networks", "no-networks", networks, networkRow, n => n.Name || "");
        fillNetworkChoice();
        if (details) {
            const c = containers.get(details.path);
            $("details-name").textContent = c ? c.Name + " (" + c.State + ")" : "";
        }
    }

    /* ------------------------------------------------------------------ */
    /* details: logs over Varlink, figures from GetStats */

    function openDetails(path) {
        closeDetails();
        details = { path, logs: null, term: null, timer: null, last: null, cpu: [] };
        $("details").hidden = false;
        render();
        followLogs();
        readStats();
        details.timer = window.setInterval(readStats, STATS_EVERY_MS);
    }

    function closeDetails() {
        if (!details)
            return;
        if (details.logs)
            details.logs.close();
        const term = details.term;
        window.clearInterval(details.timer);
        details = null;
        if (term)
            term.close();
        $("details").hidden = true;
        $("logs").replaceChildren();
        $("term-output").replaceChildren();
        $("term-form").removeAttribute("data-busy");
        for (const id of ["stat-cpu", "stat-memory", "stat-pids"])
            $(id).textContent = "–";
        $("cpu-line").setAttribute("points", "");
    }

    function appendLog(record) {
        const pre = $("logs");
        const line = document.createElement("div");
        line.className = record.stream;
        line.textContent = record.text;
        line.title = record.time;
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.appendChild(line);
        while (pre.childNodes.length > LOG_LINES_MAX)
            pre.removeChild(pre.firstChild);
        if (atBottom)
            pre.scrollTop = pre.scrollHeight;
    }

    function followLogs() {
        if (!details)
            return;
        const c = containers.get(details.path);
        if (details.logs)
            details.logs.close();
        $("logs").replaceChildren();
        details.logs = varlinkMore("io.pyctrd.Container.Logs",
                                   { name: containerName(c), follow: true }, "Logs",
                                   message => {
                                       const record = (message.parameters || {}).record;
                                       if (record)
                                           appendLog(record);
                                   });
    }

    function containerName(c) {
        return c ? c.Id : details.path.split("/").pop();
    }

    /* One Varlink call with more on a stream channel of its own; onReply gets
     * each reply (an error reply is shown as the page's problem). The channel. */
    function varlinkMore(method, parameters, what, onReply) {
        // Binary: Varlink ends each message with a NUL, which a text channel refuses.
        const channel = cockpit.channel({
            payload: "stream", unix: varlinkSocket(), superuser: "try", binary: true
        });
        const decoder = new TextDecoder();
        let buffer = "";
        channel.addEventListener("message", (event, data) => {
            buffer += decoder.decode(data, { stream: true });
            let end;
            while ((end = buffer.indexOf("\0")) >= 0) {
                const message = JSON.parse(buffer.substring(0, end));
                buffer = buffer.substring(end + 1);
                if (message.error)
                    problem(new Error(what + ": " + message.error + ": " +
                                      ((message.parameters || {}).message || "")));
                onReply(message);
            }
        });
        channel.send(new TextEncoder().encode(JSON.stringify({ method, parameters, more: true }) +
                                              "\0"));
        return channel;
    }

    /* terminal: each line runs as `sh -c LINE` through ExecOutput (Varlink), which
     * relays the output as replies: a page cannot take Exec's stdio descriptor.
     * No terminal device, so no interactive programs; one command at a time. */

    function terminalWrite(text, className) {
        const out = $("term-output");
        const span = document.createElement("span");
        if (className)
            span.className = className;
        span.textContent = text;
        out.appendChild(span);
        while (out.childNodes.length > LOG_LINES_MAX)
            out.removeChild(out.firstChild);
        out.scrollTop = out.scrollHeight;
    }

    function terminalRun(event) {
        event.preventDefault();
        const line = $("term-input").value;
        if (!details || details.term || !line.trim())
            return;
        const c = containers.get(details.path);
        $("term-input").value = "";
        terminalWrite("$ " + line + "\n", "term-command");
        $("term-form").setAttribute("data-busy", "true");
        let channel = null;
        const done = () => { // the last reply, or the channel closed: this command's end
            if (!details || details.term !== channel)
                return;
            details.term = null;
            channel.close();
            $("term-form").removeAttribute("data-busy");
        };
        channel = details.term = varlinkMore("io.pyctrd.Container.ExecOutput",
                                   { name: containerName(c), command: ["sh", "-c", line] },
                                   "Terminal", message => {
                                       const p = message.parameters || {};
                                       if (p.data)
                                           terminalWrite(p.data);
                                       if (message.continues)
                                           return;
                                       if (p.exit_code)
                                           terminalWrite("[exit " + p.exit_code + "]\n", "term-exit");
                                       done();
                                   });
        channel.addEventListener("close", done);
    }

    function readStats() {
        if (!details)
            return;
        const path = details.path;
        const c = containers.get(path);
        if (!c || (c.State !== "running" && c.State !== "paused"))
            return;
        call(path, CONTAINER, "GetStats", [])
                .then(([stats]) => {
                    if (!details || details.path !== path)
                        return;
                    const s = plain(stats);
                    const last = details.last;
                    if (last && s.read_usec > last.read_usec) {
                        const share = (s.cpu_usec - last.cpu_usec) / (s.read_usec - last.read_usec);
                        $("stat-cpu").textContent = (100 * share).toFixed(1) + " %";
                        details.cpu.push(share);
                        if (details.cpu.length > GRAPH_POINTS)
                            details.cpu.shift();
                        drawGraph(details.cpu);
                    }
                    details.last = s;
                    $("stat-memory").textContent = cockpit.format_bytes(s.memory_bytes) +
                        (s.memory_limit ? " of " + cockpit.format_bytes(s.memory_limit) : "");
                    $("stat-pids").textContent = String(s.pids);
                })
                .catch(() => {}); // it exited meanwhile: the state change shows that
    }

    function drawGraph(values) {
        // Scaled to the peak shown (at least 1 % of a CPU), so that small use is seen.
        const top = Math.max(0.01, ...values);
        $("cpu-graph").setAttribute("data-points", String(values.length));
        $("cpu-graph").querySelector("title").textContent =
            "CPU use, peak " + (100 * top).toFixed(1) + " % of one CPU";
        // Newest on the right; the scale widens to GRAPH_POINTS as readings come.
        const slots = Math.max(10, values.length) - 1;
        const first = slots - (values.length - 1);
        const points = values.map((v, i) => ((first + i) * 120 / slots).toFixed(1) + "," +
                                  (38 - 36 * v / top).toFixed(1));
        $("cpu-line").setAttribute("points", points.join(" "));
    }

    /* ------------------------------------------------------------------ */
    /* create */

    /* The create form's network choice: the daemon's default, "none", and the
     * live Network objects by name; what was chosen stays chosen across redraws. */
    function fillNetworkChoice() {
        const select = $("create-network");
        const chosen = select.value;
        const names = Array.from(networks.values()).map(n => n.Name).filter(Boolean).sort();
        const choices = [["", "network: default"], ["none", "network: none"]]
                .concat(names.map(n => [n, "network: " + n]));
        const now = Array.from(select.options).map(o => o.value);
        if (now.join("\0") === choices.map(c => c[0]).join("\0"))
            return;
        select.replaceChildren(...choices.map(([value, label]) => {
            const o = document.createElement("option");
            o.value = value;
            o.textContent = label;
            return o;
        }));
        select.value = choices.some(c => c[0] === chosen) ? chosen : "";
    }

    /* "8080:80, 127.0.0.1:5353:53/udp" → the ports option's a(sqqs):
     * (host_ip or "", host_port, container_port, protocol); host_port may be 0. */
    function parsePorts(text) {
        const ports = [];
        for (const item of text.split(",").map(p => p.trim()).filter(Boolean)) {
            const m = /^(?:([0-9.]+|\[[0-9a-fA-F:]+\]):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(item);
            const host = m ? Number(m[2]) : -1;
            const inside = m ? Number(m[3]) : -1;
            if (!m || host > 65535 || inside < 1 || inside > 65535)
                throw new Error("Port " + JSON.stringify(item) +
                                ": use host:container[/tcp|/udp], e.g. 8080:80");
            ports.push([(m[1] || "").replace(/^\[|\]$/g, ""), host, inside, m[4] || "tcp"]);
        }
        return ports;
    }

    function create(event) {
        event.preventDefault();
        const image = $("create-image").value.trim();
        const name = $("create-name").value.trim();
        const text = $("create-command").value.trim();
        const command = text ? text.split(/\s+/) : [];
        const options = {};
        if (name)
            options.name = { t: "s", v: name };
        let ports;
        try {
            ports = parsePorts($("create-ports").value);
        } catch (err) {
            problem(err);
            return;
        }
        if (ports.length)
            options.ports = { t: "a(sqqs)", v: ports };
        const restart = $("create-restart").value;
        if (restart !== "no")
            options.restart_policy = { t: "s", v: restart };
        const network = $("create-network").value;
        if (network)
            options.network = { t: "s", v: network };
        action(call(ROOT, MANAGER, "CreateContainer", [image, command, options], "sasa{sv}")
                .then(([path]) => call(path, CONTAINER, "Start", []))
                .then(() => {
                    $("create-name").value = "";
                    $("create-command").value = "";
                    $("create-ports").value = "";
                }));
    }

    /* pull: a Job whose properties (Progress, State) arrive as PropertiesChanged */

    function pull(event) {
        event.preventDefault();
        const reference = $("pull-reference").value.trim();
        const options = { tls_verify: { t: "b", v: $("pull-tls-verify").checked } };
        action(call(ROOT, MANAGER, "PullImage", [reference, options], "sa{sv}")
                .then(() => {
                    $("pull-reference").value = "";
                }));
    }

    document.addEventListener("DOMContentLoaded", () => {
        $("create-form").addEventListener("submit", create);
        $("pull-form").addEventListener("submit", pull);
        $("details-close").addEventListener("click", closeDetails);
        $("term-form").addEventListener("submit", terminalRun);
        start();
    });
}());
