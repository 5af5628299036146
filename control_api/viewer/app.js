// The episode viewer. Everything shown comes from the control API's JSON routes,
// fetched with the control token the user pasted (kept in sessionStorage, sent only
// as an Authorization header). Episode-derived text goes into the page through
// textContent and SVG text nodes only, never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "safebrowse.controlToken";
  const PLOT_WINDOW = 10;
  const MAX_TASKS_PLOTTED = 8;
  const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0a7d8c", "#bc4c00", "#57606a"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const REWARD_TERMS = [
    "browsergym_reward_scaled", "success_reward", "step_penalty", "progress_reward", "llm_penalty",
    "mistake_penalty", "repetition_penalty", "judge_quality_reward", "delayed_penalty",
  ];

  const $ = (id) => document.getElementById(id);
  const replay = { episodeId: null, state: null, trajectory: null, index: 0, generation: 0 };

  class Unauthorized extends Error {}

  // -- the API -----------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + token() },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (response.status === 401) throw new Unauthorized("The server refused this token.");
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) { /* not JSON */ }
      throw new Error(response.status + ": " + detail);
    }
    return response;
  }

  async function getJson(path) {
    return (await api(path)).json();
  }

  // A PNG fetched with the token, as a data: URL (the page's CSP allows images from
  // 'self' and data: only, and an <img src> cannot carry the Authorization header).
  async function getImage(path) {
    const blob = await (await api(path)).blob();
    if (blob.type !== "image/png") throw new Error("the server did not send a PNG");
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  const episodePath = (id) => "v1/episodes/" + encodeURIComponent(id);

  // -- small DOM helpers (text only) -------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  const number = (value) => Number(value).toFixed(3);
  const time = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

  function showError(error) {
    if (error instanceof Unauthorized) {
      signOut(error.message);
      return;
    }
    $("list-status").textContent = String(error.message || error);
  }

  // -- token -------------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("forget-token").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = message || "";
    $("token").focus();
  }

  async function signIn() {
    $("token-form").hidden = true;
    $("forget-token").hidden = false;
    $("main").hidden = false;
    await refresh();
  }

  // -- episode list and plot -------------------------------------------------------------

  async function refresh() {
    $("list-status").textContent = "Loading…";
    try {
      const everything = (await getJson("v1/episodes")).episodes;
      const status = $("status-filter").value;
      renderList(status ? everything.filter((e) => e.status === status) : everything);
      renderPlot(everything);
      $("list-status").textContent = everything.length + " episodes, updated " + new Date().toLocaleTimeString();
    } catch (error) {
      showError(error);
    }
  }

  function result(summary) {
    if (!summary.done) return ["running", ""];
    if (summary.success) return ["success", "good"];
    return [summary.failure_reason, "bad"];
  }

  function renderList(episodes) {
    const body = $("episodes").tBodies[0];
    body.replaceChildren();
    // Newest first, with a suite's episodes kept together (at the place of its newest one).
    const groupTime = new Map();
    for (const e of episodes) {
      if (e.suite_id) groupTime.set(e.suite_id, Math.max(groupTime.get(e.suite_id) ?? 0, e.created_at));
    }
    const at = (e) => (e.suite_id ? groupTime.get(e.suite_id) : e.created_at);
    const newest = [...episodes].sort((a, b) => at(b) - at(a) || (a.suite_id ?? "").localeCompare(b.suite_id ?? "")
      || b.created_at - a.created_at);
    for (const summary of newest) {
      const row = document.createElement("tr");
      row.dataset.episodeId = summary.episode_id;
      if (summary.episode_id === replay.episodeId) row.classList.add("selected");
      const open = el("button", summary.episode_id);
      open.type = "button";
      open.addEventListener("click", () => openEpisode(summary.episode_id));
      const cell = document.createElement("td");
      cell.append(open);
      const [text, className] = result(summary);
      row.append(
        cell, el("td", summary.task_id), el("td", summary.current_difficulty ?? "—"), el("td", summary.status),
        el("td", summary.step_index), el("td", text, className), el("td", time(summary.created_at)),
        el("td", summary.suite_id ?? "—"),
      );
      body.append(row);
    }
    if (!newest.length) {
      const row = document.createElement("tr");
      const cell = el("td", "No episodes.", "note");
      cell.colSpan = 8;
      row.append(cell);
      body.append(row);
    }
  }

  // One series per task: after each ended episode (by creation time), the success
  // rate over that task's last PLOT_WINDOW ended episodes. Episodes closed while
  // still running (reason "none") say nothing about the agent and are left out.
  function seriesOf(episodes) {
    const byTask = new Map();
    const ended = episodes.filter((e) => e.done && e.failure_reason !== "none")
      .sort((a, b) => a.created_at - b.created_at);
    for (const episode of ended) {
      if (!byTask.has(episode.task_id)) byTask.set(episode.task_id, []);
      byTask.get(episode.task_id).push(episode);
    }
    const series = [];
    for (const [task, list] of byTask) {
      const points = list.map((episode, i) => {
        const recent = list.slice(Math.max(0, i - PLOT_WINDOW + 1), i + 1);
        const rate = recent.filter((e) => e.success).length / recent.length;
        return { t: episode.created_at, rate, episode };
      });
      series.push({ task, points });
    }
    // The tasks played most recently, so the plot follows what the trainer runs now.
    const latest = (s) => s.points[s.points.length - 1].t;
    series.sort((a, b) => latest(b) - latest(a) || a.task.localeCompare(b.task));
    return series.slice(0, MAX_TASKS_PLOTTED);
  }

  function renderPlot(episodes) {
    const plot = $("plot");
    const legend = $("legend");
    plot.replaceChildren();
    legend.replaceChildren();
    const series = seriesOf(episodes);
    if (!series.length) {
      plot.append(el("p", "No ended episodes yet.", "note"));
      return;
    }
    const width = 900, height = 260, left = 48, right = 16, top = 14, bottom = 30;
    const times = series.flatMap((s) => s.points.map((p) => p.t));
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const x = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (width - left - right);
    const y = (rate) => top + (1 - rate) * (height - top - bottom);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "success rate per task" });
    for (const rate of [0, 0.5, 1]) {
      chart.append(svg("line", { x1: left, x2: width - right, y1: y(rate), y2: y(rate), class: "grid" }));
      chart.append(svg("text", { x: left - 6, y: y(rate) + 4, "text-anchor": "end" }, Math.round(rate * 100) + "%"));
    }
    chart.append(svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }));
    chart.append(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
    chart.append(svg("text", { x: left, y: height - 8 }, time(t0)));
    chart.append(svg("text", { x: width - right, y: height - 8, "text-anchor": "end" }, time(t1)));
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const group = svg("g", { class: "series", "data-task": s.task });
      group.append(svg("polyline", {
        points: s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(" "), stroke: color,
      }));
      for (const p of s.points) {
        const dot = svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.rate).toFixed(1), r: 3.5, fill: color });
        dot.append(svg("title", {}, `${s.task}: ${Math.round(p.rate * 100)}% after ${p.episode.episode_id}`));
        group.append(dot);
      }
      chart.append(group);
      const item = document.createElement("li");
      const swatch = svg("svg", { width: 14, height: 14, "aria-hidden": "true" });
      swatch.append(svg("rect", { width: 14, height: 14, fill: color }));
      const last = s.points[s.points.length - 1];
      item.append(swatch, el("span", s.task),
        el("span", ` ${Math.round(last.rate * 100)}% (${s.points.length} ended)`, "note"));
      legend.append(item);
    });
    plot.append(chart);
  }

  // -- replay ----------------------------------------------------------------------------

  async function openEpisode(episodeId) {
    try {
      const [state, trajectory] = await Promise.all([
        getJson(episodePath(episodeId)),
        getJson(episodePath(episodeId) + "/trajectory?observations=true"),
      ]);
      Object.assign(replay, { episodeId, state, trajectory, index: 0 });
      for (const row of $("episodes").tBodies[0].rows) {
        row.classList.toggle("selected", row.dataset.episodeId === episodeId);
      }
      renderSummary();
      $("replay").hidden = false;
      renderStep();
    } catch (error) {
      showError(error);
    }
  }

  function renderSummary() {
    const { state, trajectory } = replay;
    $("r-episode").textContent = state.episode_id;
    const rows = [
      ["task", state.task_id],
      ["goal", state.goal],
      ["difficulty", (state.current_difficulty ?? "—") + (state.difficulty_auto ? " (auto)" : "")],
      ["variant", state.curriculum_variant_id ?? "—"],
      ["status", state.status],
      ["result", state.done ? (state.success ? "success" : state.failure_reason) : "running"],
      ["steps", state.step_index + " of at most " + state.max_steps],
      ["cumulative reward", number(trajectory.cumulative_reward)],
      ["recorded", trajectory.recording.screenshots ? "screenshots and observations"
        : trajectory.recording.observations ? "observations" : "nothing (create with record_screenshots)"],
    ];
    const list = $("r-summary");
    list.replaceChildren();
    for (const [name, value] of rows) list.append(el("dt", name), el("dd", value));
  }

  function renderStep() {
    const { trajectory, index } = replay;
    const steps = trajectory.steps;
    const step = index > 0 ? steps[index - 1] : null;
    $("r-position").textContent = index === 0 ? `Start (0 of ${steps.length})` : `Step ${index} of ${steps.length}`;
    $("prev").disabled = index === 0;
    $("next").disabled = index >= steps.length;

    $("r-action").textContent = step
      ? `${step.tool} ${JSON.stringify(step.arguments, null, 1).replace(/\n\s*/g, " ")}`
      : "(none: the page as the task's setup left it)";
    $("r-error").textContent = step && step.error ? `${step.error_kind}: ${step.error}` : "";
    const verdict = [];
    if (step) {
      verdict.push(`url ${step.url}`);
      if (step.task_message) verdict.push(`task: ${step.task_message}`);
      if (step.terminated) verdict.push(`ended: ${step.failure_reason}`);
    }
    $("r-verdict").textContent = verdict.join(" · ");

    const reward = $("r-reward").tBodies[0];
    reward.replaceChildren();
    $("r-reward-total").textContent = step ? number(step.reward.total) : "—";
    if (step) {
      for (const term of REWARD_TERMS) {
        if (!step.reward[term]) continue;
        const row = document.createElement("tr");
        row.append(el("td", term), el("td", number(step.reward[term])));
        reward.append(row);
      }
    }

    const text = step ? step.observation_text : trajectory.start_observation_text;
    $("r-observation").textContent = text ?? "(not recorded: create the episode with record_screenshots or record_observations)";
    renderScreenshot(step ? step.screenshot_recorded : trajectory.start_screenshot_recorded);
  }

  async function renderScreenshot(recorded) {
    const image = $("r-screenshot");
    const note = $("r-screenshot-note");
    const generation = ++replay.generation;
    image.hidden = true;
    image.removeAttribute("src");
    if (!recorded) {
      note.textContent = "No screenshot for this step.";
      return;
    }
    note.textContent = "Loading screenshot…";
    try {
      const url = await getImage(`${episodePath(replay.episodeId)}/steps/${replay.index}/screenshot.png`);
      if (generation !== replay.generation) return; // the user moved on meanwhile
      image.src = url;
      image.hidden = false;
      note.textContent = `The page after ${replay.index === 0 ? "setup" : "step " + replay.index}.`;
    } catch (error) {
      if (generation !== replay.generation) return;
      if (error instanceof Unauthorized) showError(error);
      else note.textContent = "Screenshot unavailable: " + (error.message || error);
    }
  }

  function move(delta) {
    if (!replay.trajectory) return;
    const next = replay.index + delta;
    if (next < 0 || next > replay.trajectory.steps.length) return;
    replay.index = next;
    renderStep();
  }

  // -- wiring ------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      $("token-error").textContent = "";
      signIn();
    });
    $("forget-token").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", refresh);
    $("status-filter").addEventListener("change", refresh);
    $("prev").addEventListener("click", () => move(-1));
    $("next").addEventListener("click", () => move(1));
    document.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
      if (event.key === "ArrowLeft") move(-1);
      if (event.key === "ArrowRight") move(1);
    });
    if (token()) signIn();
    else signOut("");
  });
})();
