// BrowserGym's MiniWoB++ setup (browsergym.miniwob.base.AbstractMiniwobTask.setup),
// run as one page call instead of five: hide the human display (goal, timer, last
// reward), seed the page's random numbers, start the episode, and read the goal and
// the WOB_* globals. The display code is BrowserGym's, unchanged but for living
// inside this function.
({ removeHumanDisplay, seed, episodeMaxTime }) => {
  if (removeHumanDisplay) {
    let __display_ids = ['reward-display', 'click-canvas', 'sync-task-cover'];
    let __display_divs = {};
    let __query_div_hidden_copy = null;

    removeDisplay = function () {
      core.clearTimer();
      document.body.removeEventListener('click', core.canvasDrawClick);

      __query_div_hidden_copy = document.getElementById('query').cloneNode(true);
      document.getElementById('query').innerHTML = '';

      for (i in __display_ids) {
        elem_id = __display_ids[i];
        elem = document.getElementById(elem_id);
        // remove elem from the document
        elem.remove();
        // but keep it stored somewhere to bring back later
        __display_divs[elem_id] = elem;
      }
    };

    bringBackDisplay = function () {
      document.getElementById('query').innerHTML = __query_div_hidden_copy.innerHTML;
      for (var elem_id in __display_divs) {
        document.body.appendChild(__display_divs[elem_id]);
      }
      core.createDisplay();
    };

    core.endEpisode_legacy = core.endEpisode;
    core.startEpisodeReal_legacy = core.startEpisodeReal;
    core.getUtterance_legacy = core.getUtterance;

    core.getUtterance = function () {
      bringBackDisplay();
      utterance = core.getUtterance_legacy();
      removeDisplay();
      return utterance;
    };

    core.endEpisode = function (reward, time_proportional, reason) {
      bringBackDisplay();
      core.endEpisode_legacy(reward, time_proportional, reason);
      removeDisplay();
    };

    core.startEpisodeReal = function () {
      bringBackDisplay();
      core.startEpisodeReal_legacy();
      removeDisplay();
    };

    removeDisplay();
  }

  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = episodeMaxTime;
  core.startEpisodeReal();

  // Most tasks are ready at once; the others are waited for from Python.
  if (!WOB_TASK_READY) {
    return { ready: false };
  }
  const response = core.getUtterance();
  return {
    ready: true,
    goal: typeof response === 'object' && response !== null ? response.utterance : response,
    info: [WOB_REWARD_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_REASON, WOB_DONE_GLOBAL, WOB_EPISODE_ID,
           WOB_TASK_READY],
  };
}
